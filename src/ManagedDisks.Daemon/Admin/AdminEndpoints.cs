using ManagedDisks.Daemon.Configuration;
using ManagedDisks.Daemon.Hosting;
using ManagedDisks.Keys;
using ManagedDisks.Nbd;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace ManagedDisks.Daemon.Admin;

/// <summary>The admin API: what the CLI uses while the daemon runs. Changes apply at once, without disconnecting anyone.</summary>
internal static class AdminEndpoints
{
    public static void Map(WebApplication app, DaemonSettings settings, DiskManager disks, NbdServer server)
    {
        app.MapGet("/v1/disks", () => Results.Json(disks.Disks.Select(d => View(d, server)), AdminJson.Options));

        app.MapGet("/v1/disks/{name}", (string name) =>
            disks.Disks.FirstOrDefault(d => d.Settings.Name == name) is { } disk
                ? Results.Json(View(disk, server), AdminJson.Options)
                : Error($"no disk named '{name}' is served", StatusCodes.Status404NotFound));

        app.MapPost("/v1/disks", async (HttpRequest http) =>
        {
            var request = await http.ReadFromJsonAsync<CreateDiskRequest>(AdminJson.Options);
            if (request is null || string.IsNullOrEmpty(request.Name)) return Error("the body must be {\"name\": ..., \"size\": \"10G\"}", 400);
            if (!Units.TryParseSize(request.Size ?? "", out long size)) return Error($"size '{request.Size}' is not a size like \"512M\" or \"10G\"", 400);
            return await Run(async () => Results.Json(View(await disks.CreateAsync(request.Name, size, request.SectorSize ?? 4096, request.EncryptionSet, request.Description ?? ""), server),
                AdminJson.Options, statusCode: StatusCodes.Status201Created));
        });

        app.MapPut("/v1/disks/{name}/encryption-set", async (string name, HttpRequest http) =>
        {
            var request = await http.ReadFromJsonAsync<MoveDiskRequest>(AdminJson.Options);
            return await Run(async () => Results.Json(View(await disks.MoveAsync(name, request?.EncryptionSet), server), AdminJson.Options));
        });

        app.MapGet("/v1/connections", () => Results.Json(
            server.Connections.Select(c => new ConnectionView(c.Id, c.Peer, c.Export, c.Since)), AdminJson.Options));

        app.MapGet("/v1/keys", () => Results.Json(KeyStatus(settings), AdminJson.Options));

        app.MapGet("/v1/status", () => Results.Json(new StatusView(DateTimeOffset.UtcNow,
            disks.Disks.Select(d => View(d, server)).ToList(),
            server.Connections.Select(c => new ConnectionView(c.Id, c.Peer, c.Export, c.Since)).ToList(),
            KeyStatus(settings).ToList()), AdminJson.Options));
    }

    private static DiskView View(OpenedDisk disk, NbdServer server)
    {
        var slot = disk.Header.KeySlots[0];
        var stats = NbdServer.StatisticsFor(disk.Settings.Name);
        return new DiskView(disk.Settings.Name, disk.Device.Size, disk.Header.SectorSize, disk.Settings.EncryptionSet,
            slot.KeyStore, slot.KeyName, slot.KeyVersion, disk.Settings.Path,
            server.Connections.Count(c => c.Export == disk.Settings.Name),
            stats.BytesRead, stats.BytesWritten, stats.Requests, stats.Errors);
    }

    private static IEnumerable<KeyStatusView> KeyStatus(DaemonSettings settings) =>
        settings.EncryptionSets.Select(set =>
        {
            var status = SetKeyStatus.Read(settings, set);
            string state = status.Error is null ? status.State!.Value.ToString() : $"Unreachable: {status.Error}";
            return new KeyStatusView(set.Name, set.Identity, set.KeyStore, set.Key, set.KeyVersion, state, status.Granted.ToString());
        });

    private static async Task<IResult> Run(Func<Task<IResult>> action)
    {
        try
        {
            return await action();
        }
        catch (AdminException e)
        {
            return Error(e.Message, e.NotFound ? StatusCodes.Status404NotFound : StatusCodes.Status409Conflict);
        }
    }

    private static IResult Error(string message, int status) => Results.Json(new ErrorView(message), AdminJson.Options, statusCode: status);
}
