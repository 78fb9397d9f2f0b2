using System.Collections.Concurrent;

namespace ManagedDisks.Daemon.Hosting;

/// <summary>
/// The key state of every encryption set as the key lifecycle last read it, with when. The admin
/// API answers from here, so `status` stays quick while a key store hangs.
/// </summary>
internal sealed class KeyStatusBoard
{
    private readonly ConcurrentDictionary<string, (SetKeyStatus Status, DateTimeOffset ReadAt)> _sets = new(StringComparer.Ordinal);

    public void Record(string set, SetKeyStatus status, DateTimeOffset readAt) => _sets[set] = (status, readAt);

    /// <summary>The last reading of a set, or null before the first poll has finished.</summary>
    public (SetKeyStatus Status, DateTimeOffset ReadAt)? For(string set) => _sets.TryGetValue(set, out var entry) ? entry : null;
}
