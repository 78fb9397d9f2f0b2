using ManagedDisks.Daemon.Hosting;
using ManagedDisks.Daemon.Hosting.Rekey;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace ManagedDisks.Daemon.Admin;

/// <summary><c>POST /v1/disks/{name}/rekey</c> starts (or resumes) a re-key; <c>GET</c> the same path reports its progress.</summary>
internal static class RekeyEndpoints
{
    public static void Map(WebApplication app, DiskManager disks, RekeyJobs jobs)
    {
        app.MapPost("/v1/disks/{name}/rekey", async (string name) =>
        {
            try
            {
                return Results.Json(View(await jobs.BeginAsync(name)), AdminJson.Options, statusCode: StatusCodes.Status202Accepted);
            }
            catch (AdminException e)
            {
                return Results.Json(new ErrorView(e.Message), AdminJson.Options,
                    statusCode: e.NotFound ? StatusCodes.Status404NotFound : StatusCodes.Status409Conflict);
            }
        });

        app.MapGet("/v1/disks/{name}/rekey", (string name) =>
        {
            if (jobs.Find(name) is { } job) return Results.Json(View(job), AdminJson.Options);
            if (disks.Find(name) is not { } disk)
                return disks.Unserved.Any(d => d.Settings.Name == name)
                    ? Results.Json(new RekeyView(name, "none", 0, 0, 0, null, 0, Error: "the disk is not served"), AdminJson.Options)
                    : Results.Json(new ErrorView($"no disk named '{name}'"), AdminJson.Options, statusCode: StatusCodes.Status404NotFound);
            var size = disk.Device.Size;
            return disk.Header.Reencryption is { } pending
                ? Results.Json(new RekeyView(name, "pending", pending.Watermark, size, 100.0 * pending.Watermark / size, pending.Started, 0,
                    pending.KeySlots[0].KeyStore, pending.KeySlots[0].KeyName, pending.KeySlots[0].KeyVersion), AdminJson.Options)
                : Results.Json(new RekeyView(name, "none", 0, size, 0, null, 0), AdminJson.Options);
        });
    }

    private static RekeyView View(RekeyJob job) => new(job.Disk, job.State.ToString().ToLowerInvariant(), job.Watermark, job.Size,
        Math.Round(job.Percent, 2), job.Started, Math.Round(job.Rate), job.NewSlot.KeyStore, job.NewSlot.KeyName, job.NewSlot.KeyVersion, job.Error);
}
