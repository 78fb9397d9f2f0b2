using System.Collections.Concurrent;
using ManagedDisks.Nbd;

namespace ManagedDisks.Daemon.Hosting;

/// <summary>
/// The disks the daemon serves, by export name, and those it knows but refuses to attach (a
/// revoked key, a detach) with the reason a client is told. The first disk declared is the
/// default export.
/// </summary>
internal sealed class DiskRegistry : IExportCatalog
{
    private readonly ConcurrentDictionary<string, NbdExport> _byName = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, string> _refused = new(StringComparer.Ordinal);
    private readonly List<string> _order = [];
    private readonly object _gate = new();

    public void Add(NbdExport export)
    {
        lock (_gate)
        {
            if (!_byName.TryAdd(export.Name, export)) throw new InvalidOperationException($"disk '{export.Name}' is already served");
            _refused.TryRemove(export.Name, out _);
            _order.Add(export.Name);
        }
    }

    /// <summary>Stops offering a disk; new attaches get <paramref name="refusal"/> (NBD_REP_ERR_POLICY).</summary>
    public void Refuse(string name, string refusal)
    {
        lock (_gate)
        {
            _refused[name] = refusal;
            if (_byName.TryRemove(name, out _)) _order.Remove(name);
        }
    }

    /// <summary>Forgets a disk entirely (it was deleted).</summary>
    public void Remove(string name)
    {
        lock (_gate)
        {
            _refused.TryRemove(name, out _);
            if (_byName.TryRemove(name, out _)) _order.Remove(name);
        }
    }

    public IReadOnlyList<NbdExport> List()
    {
        lock (_gate) return _order.Select(n => _byName[n]).ToList();
    }

    public NbdExport? Find(string name)
    {
        if (name.Length == 0)
        {
            lock (_gate) return _order.Count > 0 ? _byName[_order[0]] : null;
        }
        return _byName.GetValueOrDefault(name);
    }

    public string? RefusalFor(string name) => _refused.GetValueOrDefault(name);
}
