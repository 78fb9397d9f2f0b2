using System.Runtime.InteropServices;

namespace ManagedDisks.BlockDevices;

/// <summary>The Linux file calls .NET does not expose: hole punching, extent probing, data-only sync.</summary>
internal static partial class LinuxFile
{
    public const int FallocKeepSize = 0x01;
    public const int FallocPunchHole = 0x02;
    public const int FallocZeroRange = 0x10;

    private const int SeekData = 3;
    private const int SeekHole = 4;
    private const int PosixFadviseWillNeed = 3;

    public const int ENXIO = 6;
    public const int EFBIG = 27;
    public const int ENOSPC = 28;
    public const int EDQUOT = 122;
    public const int EOPNOTSUPP = 95;
    public const int EINTR = 4;
    public const int EINVAL = 22;
    public const int EXDEV = 18;
    public const int ENOSYS = 38;

    [LibraryImport("libc", EntryPoint = "fallocate", SetLastError = true)]
    private static partial int FAllocate(int fd, int mode, long offset, long length);

    [LibraryImport("libc", EntryPoint = "lseek", SetLastError = true)]
    private static partial long LSeek(int fd, long offset, int whence);

    [LibraryImport("libc", EntryPoint = "fdatasync", SetLastError = true)]
    private static partial int FDataSync(int fd);

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int OpenFile(string path, int flags);

    private const int ORdOnly = 0, OCloExec = 0x80000;

    /// <summary>
    /// Opens read-only without .NET's advisory lock, to inspect a file the daemon holds locked.
    /// Returns -1 and the errno on failure.
    /// </summary>
    public static int OpenReadOnlyUnlocked(string path, out int errno)
    {
        int fd = OpenFile(path, ORdOnly | OCloExec);
        errno = fd < 0 ? Marshal.GetLastPInvokeError() : 0;
        return fd;
    }

    [LibraryImport("libc", EntryPoint = "posix_fadvise")]
    private static partial int PosixFadvise(int fd, long offset, long length, int advice);

    /// <summary>Returns 0 or the errno.</summary>
    public static int Fallocate(int fd, int mode, long offset, long length)
    {
        while (true)
        {
            if (FAllocate(fd, mode, offset, length) == 0) return 0;
            int errno = Marshal.GetLastPInvokeError();
            if (errno != EINTR) return errno;
        }
    }

    public static void DataSync(int fd, string path)
    {
        while (FDataSync(fd) != 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            if (errno == EINTR) continue;
            throw SparseFileErrors.FromErrno(errno, $"fdatasync of {path}");
        }
    }

    /// <summary>Start of the next data at or after <paramref name="offset"/>, or -1 when only a hole follows.</summary>
    public static long SeekToData(int fd, long offset, string path) => Seek(fd, offset, SeekData, path);

    /// <summary>Start of the next hole at or after <paramref name="offset"/> (end of file counts as one).</summary>
    public static long SeekToHole(int fd, long offset, string path) => Seek(fd, offset, SeekHole, path);

    private static long Seek(int fd, long offset, int whence, string path)
    {
        long result = LSeek(fd, offset, whence);
        if (result >= 0) return result;
        int errno = Marshal.GetLastPInvokeError();
        if (errno == ENXIO) return -1;
        throw SparseFileErrors.FromErrno(errno, $"lseek of {path}");
    }

    public static void WillNeed(int fd, long offset, long length) => _ = PosixFadvise(fd, offset, length, PosixFadviseWillNeed);
}
