using System.Text.Json;
using System.Text.Json.Serialization;
using ManagedDisks.Daemon.Configuration;
using ManagedDisks.Keys;

namespace ManagedDisks.Daemon.Hosting;

/// <summary>
/// Changes made through the admin API, kept in <c>STATE_DIR/admin-changes.json</c> so that they
/// survive a restart: disks created at run time, disks moved to another encryption set, and detached disks.
/// disks.toml is never rewritten (an operator's comments and layout stay theirs); a disk
/// declared in disks.toml takes its settings from there, with only the set override applied.
/// </summary>
internal sealed class RuntimeChanges
{
    [JsonPropertyName("disks")] public List<RuntimeDisk> Disks { get; set; } = [];

    /// <summary>Disk name → encryption set ("" for the platform key).</summary>
    [JsonPropertyName("encryption_sets")] public Dictionary<string, string> EncryptionSets { get; set; } = [];

    /// <summary>Point-in-time copies of disks, in STATE_DIR/snapshots.</summary>
    [JsonPropertyName("snapshots")] public List<RuntimeSnapshot> Snapshots { get; set; } = [];

    public sealed record RuntimeSnapshot(
        [property: JsonPropertyName("name")] string Name,
        [property: JsonPropertyName("disk")] string Disk,
        [property: JsonPropertyName("encryption_set")] string? EncryptionSet,
        [property: JsonPropertyName("size")] long Size,
        [property: JsonPropertyName("sector_size")] int SectorSize,
        [property: JsonPropertyName("path")] string Path,
        [property: JsonPropertyName("created")] DateTimeOffset Created,
        [property: JsonPropertyName("reflink")] bool Reflink);

    /// <summary>Disks detached by the admin: known, not served until attached again.</summary>
    [JsonPropertyName("detached")] public List<string> Detached { get; set; } = [];

    public sealed record RuntimeDisk(
        [property: JsonPropertyName("name")] string Name,
        [property: JsonPropertyName("size")] long Size,
        [property: JsonPropertyName("sector_size")] int SectorSize,
        [property: JsonPropertyName("description")] string Description,
        [property: JsonPropertyName("path")] string Path);

    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true };

    public static string PathIn(DaemonSettings settings) => System.IO.Path.Combine(settings.StateDir, "admin-changes.json");

    public static RuntimeChanges Load(DaemonSettings settings)
    {
        string path = PathIn(settings);
        if (!File.Exists(path)) return new RuntimeChanges();
        try
        {
            return JsonSerializer.Deserialize<RuntimeChanges>(File.ReadAllText(path), Json) ?? new RuntimeChanges();
        }
        catch (JsonException e)
        {
            throw new ConfigException($"{path} is damaged ({e.Message}); fix or remove it (it holds disks created and moved through the admin API)");
        }
    }

    public void Save(DaemonSettings settings) =>
        PlatformKeyStore.WriteAtomically(PathIn(settings), JsonSerializer.SerializeToUtf8Bytes(this, Json));

    /// <summary>The configured disks with these changes applied.</summary>
    public IReadOnlyList<DiskSettings> Apply(DaemonSettings settings)
    {
        var disks = settings.Disks.ToList();
        foreach (var added in Disks.Where(d => disks.All(c => c.Name != d.Name)))
            disks.Add(new DiskSettings(added.Name, added.Size, added.Path, added.Description, false, added.SectorSize));
        // An override naming a set that is no longer configured is ignored: disks.toml decides.
        return disks.Select(d => EncryptionSets.TryGetValue(d.Name, out string? set) && (set.Length == 0 || settings.EncryptionSets.Any(s => s.Name == set))
                ? d with { EncryptionSet = set.Length == 0 ? null : set }
                : d)
            .ToList();
    }
}
