using ManagedDisks.Daemon.Configuration;
using ManagedDisks.Daemon.Hosting;
using ManagedDisks.Keys;
using ManagedDisks.Keys.Lifecycle;
using ManagedDisks.Nbd;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Console;

namespace ManagedDisks.Daemon.Commands;

/// <summary><c>managed-disks serve [--config PATH]</c>: the daemon in the foreground, as systemd runs it.</summary>
internal static partial class ServeCommand
{
    [System.Runtime.InteropServices.LibraryImport("libc", EntryPoint = "_exit")]
    private static partial void Exit(int status);

    /// <summary>
    /// The first SIGTERM (or SIGINT) stops gracefully; a second one means "now": exit at once,
    /// as an operator expects. Acknowledged data is safe regardless: flushed or FUA writes are
    /// durable when acknowledged, and the kernel still has the rest in the page cache.
    /// </summary>
    private static IDisposable AbortOnSecondSignal()
    {
        int signals = 0;
        void OnSignal(System.Runtime.InteropServices.PosixSignalContext context)
        {
            if (Interlocked.Increment(ref signals) < 2) return;
            Exit(context.Signal == System.Runtime.InteropServices.PosixSignal.SIGINT ? 130 : 143);
        }
        var term = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGTERM, OnSignal);
        var interrupt = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGINT, OnSignal);
        return new Registrations(term, interrupt);
    }

    private sealed class Registrations(params IDisposable[] items) : IDisposable
    {
        public void Dispose()
        {
            foreach (var item in items) item.Dispose();
        }
    }

    public static async Task<int> RunAsync(string? configPath, CancellationToken cancellationToken)
    {
        DaemonSettings settings;
        GraceTimers timers;
        try
        {
            settings = configPath is null
                ? ConfigLoader.LoadEmbeddedDefault(Environment.CurrentDirectory)
                : ConfigLoader.LoadFile(configPath);
            timers = new GraceTimers(settings.GraceTimersFile, settings.RevokeGrace, settings.UnreachableGrace, TimeProvider.System);
        }
        catch (Exception e) when (e is ConfigException or KeyStoreException)
        {
            await Console.Error.WriteLineAsync($"managed-disks: {e.Message}").ConfigureAwait(false);
            return 2;
        }

        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = false, Args = [] });
        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole(o =>
        {
            o.SingleLine = true;
            o.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fff ";
            o.ColorBehavior = LoggerColorBehavior.Disabled;
        });
        // A refused start is explained in one line below; the host's own report of it is a stack trace.
        builder.Logging.AddFilter("Microsoft.Extensions.Hosting.Internal.Host", LogLevel.Critical);
        builder.Services.AddSystemd();
        builder.Services.AddSingleton(settings);
        builder.Services.AddSingleton(settings.Server);
        builder.Services.AddSingleton<DiskRegistry>();
        builder.Services.AddSingleton<IExportCatalog>(sp => sp.GetRequiredService<DiskRegistry>());
        builder.Services.AddSingleton<NbdServer>();
        builder.Services.AddSingleton<DiskManager>();
        builder.Services.AddSingleton(timers);
        builder.Services.AddSingleton<RevocationHook>();
        builder.Services.AddSingleton<KeyStatusBoard>();
        // Metrics first: key operations made while disks open are counted too.
        builder.Services.AddHostedService<MetricsService>();
        builder.Services.AddHostedService<NbdHostedService>();
        builder.Services.AddHostedService<Admin.AdminApiService>();
        builder.Services.AddHostedService<KeyLifecycleService>();
        builder.Services.AddHostedService<RotationService>();
        // Last, so it stops first: re-keys finish their chunk before the disks close.
        builder.Services.AddSingleton<Hosting.Rekey.RekeyJobs>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<Hosting.Rekey.RekeyJobs>());
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = settings.Server.ShutdownTimeout + TimeSpan.FromSeconds(5));

        using var host = builder.Build();
        using var impatience = AbortOnSecondSignal();
        try
        {
            await host.RunAsync(cancellationToken).ConfigureAwait(false);
            return 0;
        }
        catch (ConfigException e)
        {
            await Console.Error.WriteLineAsync($"managed-disks: {e.Message}").ConfigureAwait(false);
            return 1;
        }
    }
}
