using ManagedDisks.BlockDevices;

namespace ManagedDisks.Nbd;

/// <summary>A named disk the server offers.</summary>
public sealed record NbdExport(string Name, string Description, IBlockDevice Device);

/// <summary>Where the server looks exports up; the daemon owns the disks and may change them at run time.</summary>
public interface IExportCatalog
{
    /// <summary>Every export, for NBD_OPT_LIST.</summary>
    IReadOnlyList<NbdExport> List();

    /// <summary>Finds an export by name; the empty name means the default export, if there is one.</summary>
    NbdExport? Find(string name);

    /// <summary>
    /// Why a known export may not be attached now (e.g. its key was revoked), or null. A client
    /// asking for it gets NBD_REP_ERR_POLICY with this message instead of "unknown export".
    /// </summary>
    string? RefusalFor(string name) => null;
}
