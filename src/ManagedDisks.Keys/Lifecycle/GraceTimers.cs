using System.Text.Json;
using System.Text.Json.Serialization;

namespace ManagedDisks.Keys.Lifecycle;

/// <summary>
/// A disk whose key stopped being usable at <see cref="Since"/>: it is served until
/// <see cref="Deadline"/>, then shut down (<see cref="Expired"/>) until the key is usable again.
/// </summary>
public sealed record GraceTimer(
    [property: JsonPropertyName("disk")] string Disk,
    [property: JsonPropertyName("kind")] KeyUsability Kind,
    [property: JsonPropertyName("reason")] string Reason,
    [property: JsonPropertyName("since")] DateTimeOffset Since,
    [property: JsonPropertyName("deadline")] DateTimeOffset Deadline,
    [property: JsonPropertyName("expired")] bool Expired);

/// <summary>What an observation changed.</summary>
public enum GraceChange
{
    None,
    /// <summary>A grace period began (or, an unreachable store now reporting a revocation, began again with its deadline kept or brought forward).</summary>
    Started,
    /// <summary>The key is usable again; the timer is gone.</summary>
    Cancelled,
}

/// <summary>
/// The revocation clocks of every disk, kept in a file so that a restart does not reset them.
/// Pure bookkeeping: the key lifecycle feeds it what the stores say and acts on what it answers.
/// </summary>
public sealed class GraceTimers
{
    private static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower) },
    };

    private readonly string _path;
    private readonly TimeSpan _revokeGrace;
    private readonly TimeSpan _unreachableGrace;
    private readonly TimeProvider _time;
    private readonly object _gate = new();
    private readonly Dictionary<string, GraceTimer> _timers;

    /// <exception cref="KeyStoreException">The file exists but cannot be read.</exception>
    public GraceTimers(string path, TimeSpan revokeGrace, TimeSpan unreachableGrace, TimeProvider time)
    {
        _path = path;
        _revokeGrace = revokeGrace;
        _unreachableGrace = unreachableGrace;
        _time = time;
        _timers = Load(path).ToDictionary(t => t.Disk, StringComparer.Ordinal);
    }

    public IReadOnlyList<GraceTimer> All
    {
        get { lock (_gate) return _timers.Values.OrderBy(t => t.Disk, StringComparer.Ordinal).ToList(); }
    }

    public GraceTimer? For(string disk)
    {
        lock (_gate) return _timers.GetValueOrDefault(disk);
    }

    /// <summary>Records what the key of <paramref name="disk"/> looks like now.</summary>
    public (GraceChange Change, GraceTimer? Timer) Observe(string disk, KeyAccess access)
    {
        lock (_gate)
        {
            var now = _time.GetUtcNow();
            _timers.TryGetValue(disk, out var timer);
            if (access.IsUsable)
            {
                if (timer is null) return (GraceChange.None, null);
                _timers.Remove(disk);
                Save();
                return (GraceChange.Cancelled, timer);
            }

            var grace = access.Usability == KeyUsability.Revoked ? _revokeGrace : _unreachableGrace;
            if (timer is null)
            {
                timer = new GraceTimer(disk, access.Usability, access.Reason, now, now + grace, Expired: false);
                _timers[disk] = timer;
                Save();
                return (GraceChange.Started, timer);
            }
            if (timer.Kind == KeyUsability.Unreachable && access.Usability == KeyUsability.Revoked)
            {
                // The store is back and says the key is gone: a revocation, whose clock may be shorter.
                var deadline = timer.Deadline < now + grace ? timer.Deadline : now + grace;
                timer = timer with { Kind = KeyUsability.Revoked, Reason = access.Reason, Deadline = deadline };
                _timers[disk] = timer;
                Save();
                return (GraceChange.Started, timer);
            }
            // A revoked key the store cannot confirm for a while stays revoked: the clock never stretches.
            if (timer.Kind == access.Usability && timer.Reason != access.Reason)
            {
                timer = timer with { Reason = access.Reason };
                _timers[disk] = timer;
                Save();
            }
            return (GraceChange.None, timer);
        }
    }

    /// <summary>The timers whose deadline has passed since the last call; they are marked expired.</summary>
    public IReadOnlyList<GraceTimer> TakeExpired()
    {
        lock (_gate)
        {
            var now = _time.GetUtcNow();
            var expired = _timers.Values.Where(t => !t.Expired && t.Deadline <= now).ToList();
            if (expired.Count == 0) return [];
            foreach (var timer in expired) _timers[timer.Disk] = timer with { Expired = true };
            Save();
            return expired.Select(t => t with { Expired = true }).ToList();
        }
    }

    /// <summary>The earliest deadline still ahead, for sleeping until it.</summary>
    public DateTimeOffset? NextDeadline
    {
        get
        {
            lock (_gate) return _timers.Values.Where(t => !t.Expired).Select(t => (DateTimeOffset?)t.Deadline).Min();
        }
    }

    /// <summary>Drops a disk's timer (the disk is gone, or was given another key).</summary>
    public void Forget(string disk)
    {
        lock (_gate)
        {
            if (_timers.Remove(disk)) Save();
        }
    }

    private static List<GraceTimer> Load(string path)
    {
        if (!File.Exists(path)) return [];
        try
        {
            return JsonSerializer.Deserialize<List<GraceTimer>>(File.ReadAllText(path), Json) ?? [];
        }
        catch (JsonException e)
        {
            throw new KeyStoreException($"the grace-timer file {path} is corrupt ({e.Message}); restore it from a backup, or delete it to restart every revocation clock from now");
        }
    }

    private void Save()
    {
        Directory.CreateDirectory(Path.GetDirectoryName(_path)!);
        PlatformKeyStore.WriteAtomically(_path, JsonSerializer.SerializeToUtf8Bytes(All, Json));
    }
}
