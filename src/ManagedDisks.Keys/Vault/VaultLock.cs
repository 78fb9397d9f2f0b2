using System.Diagnostics;
using Microsoft.Win32.SafeHandles;

namespace ManagedDisks.Keys.Vault;

/// <summary>
/// The vault's write lock: an exclusive <c>flock</c> on <c>vault.lock</c> in the vault folder,
/// held for one read-modify-write so two administrators (two processes, or two instances in one
/// process: flock belongs to the open file, not the process) never lose each other's changes.
/// Waiting is bounded: an administrator whose command hangs gets an error, not a hang.
/// </summary>
internal sealed class VaultLock : IDisposable
{
    public const string FileName = "vault.lock";

    private readonly SafeFileHandle _handle;

    private VaultLock(SafeFileHandle handle) => _handle = handle;

    public static VaultLock Acquire(string folder, string storeName, TimeSpan timeout)
    {
        string path = Path.Combine(folder, FileName);
        SafeFileHandle handle;
        try { handle = VaultNative.OpenLockFile(path); }
        catch (IOException e) { throw new KeyStoreException($"key store '{storeName}': {e.Message}; check that the vault folder {folder} exists and is writable by this user", e); }

        var waited = Stopwatch.StartNew();
        int delay = 5;
        while (true)
        {
            bool locked;
            try { locked = VaultNative.TryLockExclusive(handle, path); }
            catch (IOException e)
            {
                handle.Dispose();
                throw new KeyStoreException($"key store '{storeName}': {e.Message}", e);
            }
            if (locked) return new VaultLock(handle);
            if (waited.Elapsed >= timeout)
            {
                handle.Dispose();
                throw new KeyStoreException(
                    $"key store '{storeName}' is busy: another administrator holds its lock {path} (waited {timeout.TotalSeconds:0.#}s); " +
                    "try again when their command finishes (if no managed-disks command is running, a hung process holds it: find it with `fuser " + path + "`)");
            }
            Thread.Sleep(delay);
            delay = Math.Min(delay * 2, 100);
        }
    }

    public void Dispose() => _handle.Dispose();
}
