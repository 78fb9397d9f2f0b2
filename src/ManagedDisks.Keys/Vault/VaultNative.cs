using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace ManagedDisks.Keys.Vault;

/// <summary>
/// The POSIX calls the vault needs and .NET does not expose: an advisory <c>flock</c> taken by us
/// (not by <see cref="FileStream"/>, whose own locking an environment variable can switch off and
/// which takes a shared lock on every read-write open), and <c>fsync</c> of a directory so a rename
/// survives a crash.
/// </summary>
internal static partial class VaultNative
{
    // Generic Linux values, the same on x86-64 and arm64.
    private const int ORdOnly = 0, ORdWr = 2, OCreat = 0x40, OCloExec = 0x80000;
    private const int LockEx = 2, LockNb = 4;
    private const int EINTR = 4, EWOULDBLOCK = 11;

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int OpenFile(string path, int flags, uint mode);

    [LibraryImport("libc", EntryPoint = "flock", SetLastError = true)]
    private static partial int Flock(SafeFileHandle fd, int operation);

    [LibraryImport("libc", EntryPoint = "fsync", SetLastError = true)]
    private static partial int Fsync(SafeFileHandle fd);

    /// <summary>Opens (creating, mode 0600) a lock file; the handle closes the descriptor, which drops any lock.</summary>
    public static SafeFileHandle OpenLockFile(string path)
    {
        int fd = OpenFile(path, ORdWr | OCreat | OCloExec, 0b110_000_000);
        if (fd < 0) throw Error($"cannot open the lock file {path}");
        return new SafeFileHandle(fd, ownsHandle: true);
    }

    /// <summary>Takes an exclusive lock without waiting; false if another open file holds it.</summary>
    public static bool TryLockExclusive(SafeFileHandle handle, string path)
    {
        while (true)
        {
            if (Flock(handle, LockEx | LockNb) == 0) return true;
            int errno = Marshal.GetLastPInvokeError();
            if (errno == EWOULDBLOCK) return false;
            if (errno != EINTR) throw Error($"cannot lock {path}", errno);
        }
    }

    /// <summary>Makes a rename (or a new file) in <paramref name="directory"/> durable.</summary>
    public static void SyncDirectory(string directory)
    {
        int fd = OpenFile(directory, ORdOnly | OCloExec, 0);
        if (fd < 0) throw Error($"cannot open the folder {directory} to sync it");
        using var handle = new SafeFileHandle(fd, ownsHandle: true);
        if (Fsync(handle) != 0) throw Error($"cannot sync the folder {directory}");
    }

    private static IOException Error(string what, int? errno = null)
    {
        int code = errno ?? Marshal.GetLastPInvokeError();
        return new IOException($"{what}: {Marshal.GetPInvokeErrorMessage(code)} (errno {code})");
    }
}
