using System.Net.Sockets;
using ManagedDisks.Daemon.Configuration;

namespace ManagedDisks.Daemon.Hosting;

internal static class SocketGuard
{
    /// <summary>Refuses to take over a socket another live daemon is serving; a stale one may be replaced.</summary>
    public static void EnsureFree(string path)
    {
        if (!File.Exists(path)) return;
        using var probe = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            probe.Connect(new UnixDomainSocketEndPoint(path));
        }
        catch (SocketException)
        {
            return; // nobody listens: a leftover of a stopped daemon
        }
        throw new ConfigException($"{path} is served by another running daemon; stop it or choose another path in [daemon]");
    }
}
