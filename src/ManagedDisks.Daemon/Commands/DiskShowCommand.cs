using System.Text.Json;
using System.Text.Json.Nodes;
using ManagedDisks.BlockDevices;
using ManagedDisks.Daemon.Configuration;
using ManagedDisks.Encryption.Format;

namespace ManagedDisks.Daemon.Commands;

/// <summary>
/// <c>managed-disks disk show NAME --config PATH [--json]</c>: a disk's metadata, read from its
/// header without the key and without the lock, so it works whether or not the daemon runs.
/// </summary>
internal static class DiskShowCommand
{
    public static async Task<int> RunAsync(string name, string? configPath, bool json)
    {
        if (CommandSettings.Load(configPath) is not { } settings) return 2;
        // Disks created through the admin API count too (STATE_DIR/admin-changes.json).
        IReadOnlyList<DiskSettings> known;
        try { known = Hosting.RuntimeChanges.Load(settings).Apply(settings); }
        catch (ConfigException e)
        {
            await Console.Error.WriteLineAsync($"managed-disks: {e.Message}").ConfigureAwait(false);
            return 2;
        }
        var disk = known.FirstOrDefault(d => d.Name == name);
        if (disk is null)
        {
            await Console.Error.WriteLineAsync($"managed-disks: no disk named '{name}' in {settings.Source} or created at run time; there are: {string.Join(", ", known.Select(d => d.Name))}").ConfigureAwait(false);
            return 1;
        }

        try
        {
            await using var file = SparseFile.OpenForInspection(disk.Path);
            var opened = await DiskContainer.ReadAsync(file, disk.Path).ConfigureAwait(false);
            var document = Describe(disk, opened);
            Console.WriteLine(json ? document.ToJsonString(new JsonSerializerOptions { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }) : AsText(document));
            return 0;
        }
        catch (Exception e) when (e is BlockDeviceException or DiskFormatException)
        {
            await Console.Error.WriteLineAsync($"managed-disks: {e.Message}").ConfigureAwait(false);
            return 1;
        }
    }

    private static JsonObject Describe(DiskSettings disk, OpenedHeader opened)
    {
        var h = opened.Header;
        var document = new JsonObject
        {
            ["name"] = disk.Name,
            ["backing_file"] = disk.Path,
            ["uuid"] = h.Uuid.ToString(),
            ["size"] = h.LogicalSize,
            ["sector_size"] = h.SectorSize,
            ["payload_offset"] = h.PayloadOffset,
            ["cipher"] = h.CipherName,
            ["key_bits"] = h.KeyBits,
            ["created"] = h.Created.ToString("O"),
            ["header_sequence"] = opened.Sequence,
            ["header_copies"] = new JsonArray(opened.CopyProblems.Select((problem, copy) => (JsonNode)new JsonObject
            {
                ["copy"] = copy,
                ["offset"] = HeaderCodec.CopyOffset(copy),
                ["valid"] = problem is null,
                ["problem"] = problem,
            }).ToArray()),
            ["key_slots"] = Slots(h.KeySlots),
        };
        if (h.Reencryption is { } r)
        {
            // Only while a re-key is in progress: how far it got, and the slot of the DEK it moves to.
            document["reencryption"] = new JsonObject
            {
                ["watermark"] = r.Watermark,
                ["percent"] = Math.Round(100.0 * r.Watermark / h.LogicalSize, 2),
                ["chunk_size"] = r.ChunkSize,
                ["chunk_sectors_in_progress"] = r.ChunkSectors,
                ["started"] = r.Started.ToString("O"),
                ["key_slots"] = Slots(r.KeySlots),
            };
        }
        return document;
    }

    private static JsonArray Slots(IEnumerable<KeySlot> slots) => new(slots.Select(s => (JsonNode)new JsonObject
    {
        ["key_store"] = s.KeyStore,
        ["key_name"] = s.KeyName,
        ["key_version"] = s.KeyVersion,
        ["wrap_algorithm"] = s.WrapAlgorithm,
        ["wrapped_dek"] = Convert.ToBase64String(s.WrappedDek),
        ["created"] = s.Created.ToString("O"),
    }).ToArray());

    private static string AsText(JsonObject d)
    {
        var lines = new List<string>
        {
            $"disk            {d["name"]}",
            $"backing file    {d["backing_file"]}",
            $"uuid            {d["uuid"]}",
            $"size            {Units.FormatSize((long)d["size"]!)} ({d["size"]} bytes)",
            $"sector size     {d["sector_size"]}",
            $"payload offset  {d["payload_offset"]}",
            $"cipher          {d["cipher"]} ({d["key_bits"]}-bit key)",
            $"created         {d["created"]}",
            $"header          sequence {d["header_sequence"]}",
        };
        foreach (var copy in d["header_copies"]!.AsArray())
            lines.Add($"  copy {copy!["copy"]} at {copy["offset"]}: {((bool)copy["valid"]! ? "valid" : $"INVALID ({copy["problem"]})")}");
        foreach (var slot in d["key_slots"]!.AsArray())
            lines.Add($"key slot        {slot!["key_store"]}/{slot["key_name"]} version {slot["key_version"]}, {slot["wrap_algorithm"]}, created {slot["created"]}");
        if (d["reencryption"] is JsonObject r)
            lines.Add($"re-key          {r["percent"]}% done (watermark {r["watermark"]}), started {r["started"]}; resumes when the daemon serves the disk");
        return string.Join('\n', lines);
    }
}
