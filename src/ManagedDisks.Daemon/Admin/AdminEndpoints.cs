using ManagedDisks.Daemon.Configuration;
using ManagedDisks.Daemon.Hosting;
using ManagedDisks.Keys;
using ManagedDisks.Keys.Lifecycle;
using ManagedDisks.Nbd;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace ManagedDisks.Daemon.Admin;

/// <summary>The admin API: what the CLI uses while the daemon runs. Changes apply at once, without disconnecting anyone.</summary>
internal static class AdminEndpoints
{
    public static void Map(WebApplication app, DaemonSettings settings, DiskManager disks, NbdServer server, GraceTimers timers, KeyStatusBoard board)
    {
        IEnumerable<DiskView> AllDisks() => disks.Disks.Select(d => View(d, server, timers))
            .Concat(disks.Unserved.Select(d => View(d, timers)))
            .OrderBy(d => d.Name, StringComparer.Ordinal);

        app.MapGet("/v1/disks", () => Results.Json(AllDisks(), AdminJson.Options));

        app.MapGet("/v1/disks/{name}", (string name) =>
            AllDisks().FirstOrDefault(d => d.Name == name) is { } disk
                ? Results.Json(disk, AdminJson.Options)
                : Error($"no disk named '{name}'", StatusCodes.Status404NotFound));

        app.MapPost("/v1/disks/{name}/detach", (string name) => Run(async () =>
        {
            await disks.DetachAsync(name);
            return Results.Json(AllDisks().First(d => d.Name == name), AdminJson.Options);
        }));

        app.MapPost("/v1/disks/{name}/attach", (string name) => Run(async () =>
            Results.Json(View(await disks.AttachAsync(name), server, timers), AdminJson.Options)));

        app.MapPost("/v1/disks", async (HttpRequest http) =>
        {
            var request = await http.ReadFromJsonAsync<CreateDiskRequest>(AdminJson.Options);
            if (request is null || string.IsNullOrEmpty(request.Name)) return Error("the body must be {\"name\": ..., \"size\": \"10G\"} or {\"name\": ..., \"from\": SNAPSHOT}", 400);
            if (request.From is { } from)
                return await Run(async () => Results.Json(View(await disks.CreateFromSnapshotAsync(request.Name, from, request.EncryptionSet, request.Description ?? ""), server, timers),
                    AdminJson.Options, statusCode: StatusCodes.Status201Created));
            if (!Units.TryParseSize(request.Size ?? "", out long size)) return Error($"size '{request.Size}' is not a size like \"512M\" or \"10G\"", 400);
            return await Run(async () => Results.Json(View(await disks.CreateAsync(request.Name, size, request.SectorSize ?? 4096, request.EncryptionSet, request.Description ?? ""), server, timers),
                AdminJson.Options, statusCode: StatusCodes.Status201Created));
        });

        app.MapPost("/v1/disks/{name}/snapshots", async (string name, HttpRequest http) =>
        {
            var request = await http.ReadFromJsonAsync<SnapshotRequest>(AdminJson.Options);
            if (request is null || string.IsNullOrEmpty(request.Name)) return Error("the body must be {\"name\": SNAPSHOT}", 400);
            return await Run(async () => Results.Json(await disks.SnapshotAsync(name, request.Name), AdminJson.Options, statusCode: StatusCodes.Status201Created));
        });

        app.MapGet("/v1/snapshots", () => Results.Json(disks.Snapshots, AdminJson.Options));

        app.MapPut("/v1/disks/{name}/encryption-set", async (string name, HttpRequest http) =>
        {
            var request = await http.ReadFromJsonAsync<MoveDiskRequest>(AdminJson.Options);
            return await Run(async () => Results.Json(View(await disks.MoveAsync(name, request?.EncryptionSet), server, timers), AdminJson.Options));
        });

        app.MapPost("/v1/sets/{name}/rewrap", (string name) => Run(async () =>
            Results.Json(await disks.RewrapSetAsync(name), AdminJson.Options)));

        app.MapGet("/v1/connections", () => Results.Json(
            server.Connections.Select(c => new ConnectionView(c.Id, c.Peer, c.Export, c.Since)), AdminJson.Options));

        app.MapGet("/v1/keys", () => Results.Json(KeyStatus(settings, board), AdminJson.Options));

        app.MapGet("/v1/status", () => Results.Json(new StatusView(DateTimeOffset.UtcNow,
            AllDisks().ToList(),
            server.Connections.Select(c => new ConnectionView(c.Id, c.Peer, c.Export, c.Since)).ToList(),
            KeyStatus(settings, board).ToList()), AdminJson.Options));
    }

    private static DiskView View(OpenedDisk disk, NbdServer server, GraceTimers timers)
    {
        var slot = disk.Header.KeySlots[0];
        var stats = NbdServer.StatisticsFor(disk.Settings.Name);
        var timer = timers.For(disk.Settings.Name);
        return new DiskView(disk.Settings.Name, disk.Device.Size, disk.Header.SectorSize, disk.Settings.EncryptionSet,
            slot.KeyStore, slot.KeyName, slot.KeyVersion, disk.Settings.Path,
            server.Connections.Count(c => c.Export == disk.Settings.Name),
            stats.BytesRead, stats.BytesWritten, stats.Requests, stats.Errors,
            timer is null ? "serving" : "grace", KeyStateName(timer?.Kind ?? KeyUsability.Usable), timer?.Deadline, timer?.Reason);
    }

    /// <summary>A disk not served now: its key information is what the configuration says, the header is not read.</summary>
    private static DiskView View(UnservedDisk disk, GraceTimers timers)
    {
        var stats = NbdServer.StatisticsFor(disk.Settings.Name);
        var timer = timers.For(disk.Settings.Name);
        string state = disk.Reason == UnservedReason.Detached ? "detached" : timer is { Expired: true } ? "shut-down" : "waiting-for-key";
        string keyState = timer is not null ? KeyStateName(timer.Kind) : disk.Reason == UnservedReason.Detached ? "usable" : "revoked";
        return new DiskView(disk.Settings.Name, disk.Settings.Size, disk.Settings.SectorSize, disk.Settings.EncryptionSet,
            "", "", "", disk.Settings.Path, 0, stats.BytesRead, stats.BytesWritten, stats.Requests, stats.Errors,
            state, keyState, timer?.Deadline, disk.Message);
    }

    private static string KeyStateName(KeyUsability usability) => usability.ToString().ToLowerInvariant();

    private static IEnumerable<KeyStatusView> KeyStatus(DaemonSettings settings, KeyStatusBoard board) =>
        settings.EncryptionSets.Select(set =>
        {
            var entry = board.For(set.Name);
            if (entry is not { Status: var status, ReadAt: var readAt })
                return new KeyStatusView(set.Name, set.Identity, set.KeyStore, set.Key, set.KeyVersion, "Unknown: not read yet", "", null);
            string state = status.Error is null ? status.State!.Value.ToString() : $"Unreachable: {status.Error}";
            return new KeyStatusView(set.Name, set.Identity, set.KeyStore, set.Key, set.KeyVersion, state, status.Granted.ToString(), readAt);
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
