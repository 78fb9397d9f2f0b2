using System.Net.Http.Json;
using System.Net.Sockets;

namespace ManagedDisks.Daemon.Admin;

/// <summary>The CLI's side of the admin API: HTTP over the daemon's admin Unix socket.</summary>
internal sealed class AdminClient : IDisposable
{
    private readonly HttpClient _http;
    private readonly string _socket;

    public AdminClient(string socket)
    {
        _socket = socket;
        var handler = new SocketsHttpHandler
        {
            ConnectCallback = async (_, cancellationToken) =>
            {
                var unix = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                try
                {
                    await unix.ConnectAsync(new UnixDomainSocketEndPoint(socket), cancellationToken).ConfigureAwait(false);
                    return new NetworkStream(unix, ownsSocket: true);
                }
                catch
                {
                    unix.Dispose();
                    throw;
                }
            },
        };
        _http = new HttpClient(handler) { BaseAddress = new Uri("http://managed-disks/"), Timeout = TimeSpan.FromMinutes(2) };
    }

    /// <summary>Sends a request; throws <see cref="AdminClientException"/> with the daemon's message on failure.</summary>
    public async Task<T> SendAsync<T>(HttpMethod method, string path, object? body = null)
    {
        using var request = new HttpRequestMessage(method, path);
        if (body is not null) request.Content = JsonContent.Create(body, body.GetType(), options: AdminJson.Options);
        HttpResponseMessage response;
        try
        {
            response = await _http.SendAsync(request).ConfigureAwait(false);
        }
        catch (HttpRequestException e) when (e.InnerException is SocketException || e.HttpRequestError == HttpRequestError.ConnectionError)
        {
            throw new AdminClientException($"the daemon is not running (nothing answers on {_socket}); start it with `managed-disks serve --config ...`");
        }
        using (response)
        {
            if (!response.IsSuccessStatusCode)
            {
                var error = await response.Content.ReadFromJsonAsync<ErrorView>(AdminJson.Options).ConfigureAwait(false);
                throw new AdminClientException(error?.Error ?? $"the daemon answered {(int)response.StatusCode}");
            }
            return (await response.Content.ReadFromJsonAsync<T>(AdminJson.Options).ConfigureAwait(false))!;
        }
    }

    public void Dispose() => _http.Dispose();
}

internal sealed class AdminClientException(string message) : Exception(message);
