using System.Net.Sockets;

namespace ManagedDisks.Daemon.Hosting;

/// <summary>
/// systemd socket activation (sd_listen_fds(3)): listening sockets passed as file descriptors
/// 3, 4, ... with LISTEN_PID and LISTEN_FDS, as nbdkit and nbd-server accept them.
/// </summary>
internal static class SocketActivation
{
    private const int FirstDescriptor = 3;

    /// <summary>The passed sockets, or none; the variables are cleared so no child inherits them.</summary>
    public static IReadOnlyList<Socket> Take()
    {
        string? pid = Environment.GetEnvironmentVariable("LISTEN_PID");
        string? count = Environment.GetEnvironmentVariable("LISTEN_FDS");
        Environment.SetEnvironmentVariable("LISTEN_PID", null);
        Environment.SetEnvironmentVariable("LISTEN_FDS", null);
        Environment.SetEnvironmentVariable("LISTEN_FDNAMES", null);
        // The variables are meant for exactly this process, not for one it was started from.
        if (pid != Environment.ProcessId.ToString() || !int.TryParse(count, out int n) || n <= 0) return [];
        return Enumerable.Range(FirstDescriptor, n)
            .Select(fd => new Socket(new SafeSocketHandle(fd, ownsHandle: true)))
            .ToList();
    }
}
