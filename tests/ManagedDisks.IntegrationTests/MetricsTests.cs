using System.Net;
using System.Net.Sockets;

namespace ManagedDisks.IntegrationTests;

/// <summary>Prometheus metrics as a scraper sees them.</summary>
[NonParallelizable]
public class MetricsTests
{
    internal static int FreePort()
    {
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        return ((IPEndPoint)probe.LocalEndpoint).Port;
    }

    internal static double Sample(string metrics, string name, string labels)
    {
        var line = metrics.Split('\n').FirstOrDefault(l => l.StartsWith(name + "{", StringComparison.Ordinal) && labels.Split(',').All(l.Contains));
        Assert.That(line, Is.Not.Null, $"no sample {name}{{{labels}}} in:\n{metrics}");
        return double.Parse(line![(line!.LastIndexOf(' ') + 1)..], System.Globalization.CultureInfo.InvariantCulture);
    }

    [Test]
    public async Task IoKeyOperationsAndConnectionsAreExported()
    {
        int port = FreePort();
        await using var d = await DaemonProcess.StartAsync(DaemonProcess.Disk("disk0", "16M"),
            daemonExtra: $"\n[metrics]\nlisten = \"http://127.0.0.1:{port}/metrics\"\n");
        await Tool.RunOkAsync("qemu-io", "-f", "raw", "-c", "write -P 0x5 0 1M", "-c", "read -P 0x5 0 1M", d.Uri());
        var bad = await Tool.RunAsync("nbdsh", ["-u", d.Uri(), "-c", "h.set_strict_mode(0)\ntry:\n  h.pread(512, 1 << 40)\nexcept nbd.Error:\n  pass"]);
        Assert.That(bad.ExitCode, Is.Zero, bad.ToString());

        using var http = new HttpClient();
        string metrics = await http.GetStringAsync($"http://127.0.0.1:{port}/metrics");
        Assert.That(Sample(metrics, "manageddisks_nbd_io_bytes", "export=\"disk0\",direction=\"write\""), Is.GreaterThanOrEqualTo(1 << 20));
        Assert.That(Sample(metrics, "manageddisks_nbd_io_bytes", "export=\"disk0\",direction=\"read\""), Is.GreaterThanOrEqualTo(1 << 20));
        Assert.That(Sample(metrics, "manageddisks_nbd_request_errors", "error=\"invalid\""), Is.GreaterThanOrEqualTo(1));
        Assert.That(Sample(metrics, "manageddisks_nbd_request_duration_count", "command=\"write\""), Is.GreaterThanOrEqualTo(1));
        Assert.That(Sample(metrics, "manageddisks_keys_operations", "operation=\"unwrapKey\",result=\"ok\""), Is.GreaterThanOrEqualTo(1));
        Assert.That(metrics, Does.Contain("manageddisks_nbd_connections"));
    }
}
