using System.Collections.Concurrent;
using ManagedDisks.Nbd;

namespace ManagedDisks.Daemon.Hosting;

/// <summary>The disks the daemon serves, by export name. The first disk declared is the default export.</summary>
internal sealed class DiskRegistry : IExportCatalog
{
    private readonly ConcurrentDictionary<string, NbdExport> _byName = new(StringComparer.Ordinal);
    private readonly List<string> _order = [];
    private readonly object _gate = new();

    public void Add(NbdExport export)
    {
        lock (_gate)
        {
            if (!_byName.TryAdd(export.Name, export)) throw new InvalidOperationException($"disk '{export.Name}' is already served");
            _order.Add(export.Name);
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
}
