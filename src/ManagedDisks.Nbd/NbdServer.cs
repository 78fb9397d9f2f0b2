using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;

namespace ManagedDisks.Nbd;

/// <summary>
/// Accepts NBD clients on any number of Unix and TCP sockets and runs each connection:
/// handshake under a deadline, then transmission. Knows exports only through the catalog.
/// </summary>
public sealed class NbdServer(IExportCatalog catalog, NbdServerOptions options, ILogger<NbdServer> logger) : IAsyncDisposable
{
    private readonly List<Socket> _listeners = [];
    private readonly List<Socket> _adopted = [];
    private readonly List<Task> _acceptLoops = [];
    private readonly ConcurrentDictionary<long, Connection> _connections = new();
    private long _nextConnectionId;
    private readonly CancellationTokenSource _stopping = new();
    private int _connectionCount;

    /// <summary>Binds a listener and starts accepting; returns the bound endpoint (useful with TCP port 0).</summary>
    public EndPoint Listen(EndPoint endpoint)
    {
        Socket socket;
        if (endpoint is UnixDomainSocketEndPoint unix)
        {
            string path = unix.ToString();
            // A socket file left by a previous run would make bind fail.
            if (File.Exists(path)) File.Delete(path);
            socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        }
        else
        {
            socket = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
        }
        try
        {
            socket.Bind(endpoint);
            socket.Listen(512);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
        _listeners.Add(socket);
        var bound = socket.LocalEndPoint!;
        NbdLog.Listening(logger, Describe(bound));
        _acceptLoops.Add(AcceptLoopAsync(socket));
        return bound;
    }

    /// <summary>
    /// Serves a socket that is already bound and listening, e.g. one systemd passed with socket
    /// activation. Its socket file belongs to whoever made it and is left in place at stop.
    /// </summary>
    public EndPoint Adopt(Socket listening)
    {
        _adopted.Add(listening);
        _listeners.Add(listening);
        var bound = listening.LocalEndPoint!;
        NbdLog.Listening(logger, Describe(bound) + " (socket activation)");
        _acceptLoops.Add(AcceptLoopAsync(listening));
        return bound;
    }

    public static string Describe(EndPoint endpoint) =>
        endpoint is UnixDomainSocketEndPoint ? $"unix:{endpoint}" : $"tcp:{endpoint}";

    private async Task AcceptLoopAsync(Socket listener)
    {
        while (!_stopping.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await listener.AcceptAsync(_stopping.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                if (_stopping.IsCancellationRequested) return;
                continue; // e.g. ECONNABORTED for a client that left the backlog
            }

            long id = Interlocked.Increment(ref _nextConnectionId);
            string peer = client.RemoteEndPoint is IPEndPoint ip ? $"#{id} {ip}" : $"#{id} unix";
            if (Interlocked.Increment(ref _connectionCount) > options.MaxConnections)
            {
                Interlocked.Decrement(ref _connectionCount);
                NbdLog.ConnectionLimit(logger, peer, options.MaxConnections);
                client.Dispose();
                continue;
            }
            if (client.AddressFamily is AddressFamily.InterNetwork or AddressFamily.InterNetworkV6) client.NoDelay = true;

            var connection = new Connection(client, id, peer, _stopping.Token);
            _connections[id] = connection;
            connection.Task = RunConnectionAsync(connection);
        }
    }

    private sealed class Connection(Socket socket, long id, string peer, CancellationToken serverStopping)
    {
        public Socket Socket { get; } = socket;
        public long Id { get; } = id;
        public string Peer { get; } = peer;

        /// <summary>Ends this connection's transmission softly: the server stops, or its export is taken away.</summary>
        public CancellationTokenSource Stop { get; } = CancellationTokenSource.CreateLinkedTokenSource(serverStopping);

        public Task Task { get; set; } = Task.CompletedTask;
        public NbdConnectionInfo Info { get; set; } = new(id, peer, null, DateTimeOffset.UtcNow);
    }

    /// <summary>Totals served for an export since start, for the status command.</summary>
    public static ExportStatistics StatisticsFor(string export) => NbdMetrics.For(export);

    /// <summary>The open connections now, for the admin API.</summary>
    public IReadOnlyList<NbdConnectionInfo> Connections =>
        _connections.Values.Select(c => c.Info).OrderBy(c => c.Id).ToList();

    /// <summary>
    /// Disconnects every client of an export the way a stopping server does (requests that still
    /// arrive get ESHUTDOWN, then the connection closes) and returns once they are gone.
    /// </summary>
    public async Task DisconnectExportAsync(string export)
    {
        var leaving = _connections.Values.Where(c => c.Info.Export == export).ToList();
        foreach (var connection in leaving) connection.Stop.Cancel();
        var all = Task.WhenAll(leaving.Select(c => c.Task));
        if (await Task.WhenAny(all, Task.Delay(options.ShutdownGrace + options.ShutdownTimeout)).ConfigureAwait(false) != all)
        {
            foreach (var connection in leaving) connection.Socket.Dispose();
            await all.ConfigureAwait(false);
        }
        if (leaving.Count > 0) NbdLog.ExportDisconnected(logger, export, leaving.Count);
    }

    private async Task RunConnectionAsync(Connection connection)
    {
        long id = connection.Id;
        var socket = connection.Socket;
        string peer = connection.Peer;
        await Task.Yield();
        NbdMetrics.ConnectionOpened(); // leave the accept loop at once
        NbdLog.Connected(logger, peer);
        var streams = new ConnectionStreams(new NetworkStream(socket, ownsSocket: true));
        try
        {
            Session? session;
            using (var deadline = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token))
            {
                deadline.CancelAfter(options.HandshakeTimeout);
                try
                {
                    session = await new Handshake(streams, catalog, options.Tls, logger, peer).RunAsync(deadline.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (!_stopping.IsCancellationRequested)
                {
                    NbdLog.HandshakeTimeout(logger, peer, options.HandshakeTimeout);
                    return;
                }
            }
            if (session is null) return;
            NbdLog.Attached(logger, peer, session.Export.Name);
            connection.Info = connection.Info with { Export = session.Export.Name };
            await new Transmission(streams.Input, streams.Output, session, options, logger, peer).RunAsync(connection.Stop.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException or OperationCanceledException or System.Security.Authentication.AuthenticationException)
        {
            // The peer vanished or failed the TLS handshake; nothing to tell anyone.
        }
        catch (Exception e)
        {
            NbdLog.ConnectionFailed(logger, peer, e);
        }
        finally
        {
            await streams.DisposeAsync().ConfigureAwait(false);
            Interlocked.Decrement(ref _connectionCount);
            NbdMetrics.ConnectionClosed();
            _connections.TryRemove(id, out _);
            connection.Stop.Dispose();
            NbdLog.Disconnected(logger, peer);
        }
    }

    /// <summary>Stops accepting, lets connections finish what is in flight, and aborts the rest at the deadline.</summary>
    public async Task StopAsync()
    {
        if (_stopping.IsCancellationRequested) return;
        _stopping.Cancel();
        NbdLog.Stopping(logger, options.ShutdownGrace);
        foreach (var listener in _listeners)
        {
            if (listener.LocalEndPoint is UnixDomainSocketEndPoint unix && !_adopted.Contains(listener))
            {
                try { File.Delete(unix.ToString()); } catch (IOException) { }
            }
            listener.Dispose();
        }
        await Task.WhenAll(_acceptLoops).ConfigureAwait(false);

        var all = Task.WhenAll(_connections.Values.Select(c => c.Task));
        if (await Task.WhenAny(all, Task.Delay(options.ShutdownTimeout)).ConfigureAwait(false) != all)
        {
            foreach (var connection in _connections.Values) connection.Socket.Dispose();
            await all.ConfigureAwait(false);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync().ConfigureAwait(false);
        _stopping.Dispose();
    }
}
