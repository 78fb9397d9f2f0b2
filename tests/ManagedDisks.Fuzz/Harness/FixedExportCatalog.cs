using ManagedDisks.Nbd;

namespace ManagedDisks.Fuzz.Harness;

/// <summary>A catalog of fixed exports; the first is also the default (empty name), as in the daemon.</summary>
internal sealed class FixedExportCatalog(IReadOnlyList<NbdExport> exports) : IExportCatalog
{
    public IReadOnlyList<NbdExport> List() => exports;

    public NbdExport? Find(string name) =>
        name.Length == 0 ? exports.FirstOrDefault() : exports.FirstOrDefault(e => e.Name == name);
}
