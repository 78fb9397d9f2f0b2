using ManagedDisks.Daemon.Configuration;
using Microsoft.Extensions.Hosting;
using Prometheus;

namespace ManagedDisks.Daemon.Hosting;

/// <summary>
/// Serves Prometheus metrics on <c>[metrics] listen</c> with prometheus-net, which also publishes
/// every System.Diagnostics.Metrics meter: the NBD layer's (requests, bytes, latency, errors,
/// connections), the key agent's (key operations by result) and the key lifecycle's (grace
/// periods, disks by state).
/// </summary>
internal sealed class MetricsService(DaemonSettings settings, Keys.Lifecycle.GraceTimers timers, DiskManager disks) : IHostedService
{
    private KestrelMetricServer? _server;

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        if (settings.Metrics is not { } uri) return;
        // prometheus-net starts listening to meters at its first collection; measurements made
        // before that are lost. Create our instruments and collect once now, before any client.
        Nbd.NbdInstruments.Publish();
        Keys.Agent.KeyAgent.PublishInstruments();
        LifecycleMetrics.Publish(timers, disks, TimeProvider.System);
        await Metrics.DefaultRegistry.CollectAndExportAsTextAsync(Stream.Null, cancellationToken).ConfigureAwait(false);
        _server = new KestrelMetricServer(uri.Host, uri.Port, uri.AbsolutePath);
        try
        {
            _server.Start();
        }
        catch (IOException e)
        {
            throw new ConfigException($"cannot serve metrics on {uri}: {e.Message}; change [metrics] listen");
        }
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (_server is not null) await _server.StopAsync().ConfigureAwait(false);
    }
}
