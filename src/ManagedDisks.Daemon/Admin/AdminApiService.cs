using System.Runtime.InteropServices;
using ManagedDisks.Daemon.Configuration;
using ManagedDisks.Daemon.Hosting;
using ManagedDisks.Nbd;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace ManagedDisks.Daemon.Admin;

/// <summary>
/// Serves the admin API with Kestrel on <c>[daemon] admin_socket</c>, a Unix socket only its
/// owner can use (mode 0600): the file's permissions are the access control.
/// </summary>
internal sealed partial class AdminApiService(DaemonSettings settings, DiskManager disks, NbdServer server, Keys.Lifecycle.GraceTimers timers, KeyStatusBoard board,
    ILoggerFactory loggers, Hosting.Rekey.RekeyJobs rekeys) : IHostedService
{
    private WebApplication? _app;

    [LibraryImport("libc", EntryPoint = "umask")]
    private static partial uint Umask(uint mask);

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        string socket = settings.AdminSocket;
        Directory.CreateDirectory(Path.GetDirectoryName(socket)!);
        SocketGuard.EnsureFree(socket);
        if (File.Exists(socket)) File.Delete(socket);

        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [] });
        builder.Logging.ClearProviders();
        builder.Services.AddSingleton(loggers);
        builder.WebHost.ConfigureKestrel(kestrel => kestrel.ListenUnixSocket(socket));
        _app = builder.Build();
        AdminEndpoints.Map(_app, settings, disks, server, timers, board);
        RekeyEndpoints.Map(_app, disks, rekeys);

        // The socket must never exist with looser permissions, not even for a moment.
        uint previous = Umask(0b000_111_111);
        try
        {
            await _app.StartAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (IOException e)
        {
            throw new ConfigException($"cannot serve the admin API on {socket}: {e.Message}");
        }
        finally
        {
            Umask(previous);
        }
        File.SetUnixFileMode(socket, UnixFileMode.UserRead | UnixFileMode.UserWrite);
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (_app is null) return;
        await _app.StopAsync(cancellationToken).ConfigureAwait(false);
        await _app.DisposeAsync().ConfigureAwait(false);
        try { File.Delete(settings.AdminSocket); } catch (IOException) { }
    }
}
