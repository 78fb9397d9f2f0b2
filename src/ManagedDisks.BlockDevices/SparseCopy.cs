using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace ManagedDisks.BlockDevices;

/// <summary>
/// Copies a sparse backing file to a new file: a reflink (FICLONE) where the file system shares
/// extents (btrfs, XFS), otherwise only the data extents (SEEK_DATA/SEEK_HOLE with
/// copy_file_range), so holes stay holes. The source is read without taking its lock: the caller
/// holds its writers still (GatedDevice.PauseAsync) for the copy to be consistent.
/// </summary>
public static partial class SparseCopy
{
    private const uint FiClone = 0x40049409;

    [LibraryImport("libc", EntryPoint = "ioctl", SetLastError = true)]
    private static partial int Ioctl(int fd, uint request, int argument);

    [LibraryImport("libc", EntryPoint = "copy_file_range", SetLastError = true)]
    private static partial nint CopyFileRange(int fdIn, ref long offsetIn, int fdOut, ref long offsetOut, nuint length, uint flags);

    /// <summary>Creates <paramref name="destination"/> (which must not exist) as a durable copy; returns whether it is a reflink.</summary>
    /// <exception cref="BlockDeviceException">The source cannot be read or the destination written (e.g. ENOSPC).</exception>
    public static bool Copy(string source, string destination)
    {
        int sourceFd = LinuxFile.OpenReadOnlyUnlocked(source, out int errno);
        if (sourceFd < 0) throw SparseFileErrors.FromErrno(errno, $"open of {source}");
        using var sourceHandle = new SafeFileHandle(sourceFd, ownsHandle: true);
        long size = RandomAccess.GetLength(sourceHandle);
        using var target = new FileStream(destination, new FileStreamOptions
        {
            Mode = FileMode.CreateNew, Access = FileAccess.ReadWrite, Share = FileShare.None,
            UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
        });
        int targetFd = (int)target.SafeFileHandle.DangerousGetHandle();
        bool reflinked = Ioctl(targetFd, FiClone, sourceFd) == 0;
        if (!reflinked)
        {
            target.SetLength(size);
            long offset = LinuxFile.SeekToData(sourceFd, 0, source);
            while (offset >= 0 && offset < size)
            {
                long end = LinuxFile.SeekToHole(sourceFd, offset, source);
                CopyRange(sourceHandle, target.SafeFileHandle, offset, end - offset, source, destination);
                offset = end >= size ? -1 : LinuxFile.SeekToData(sourceFd, end, source);
            }
        }
        target.Flush(flushToDisk: true);
        return reflinked;
    }

    private static void CopyRange(SafeFileHandle source, SafeFileHandle target, long offset, long length, string sourcePath, string targetPath)
    {
        long inOffset = offset, outOffset = offset, left = length;
        int sourceFd = (int)source.DangerousGetHandle(), targetFd = (int)target.DangerousGetHandle();
        while (left > 0)
        {
            nint copied = CopyFileRange(sourceFd, ref inOffset, targetFd, ref outOffset, (nuint)Math.Min(left, 1L << 30), 0);
            if (copied > 0)
            {
                left -= copied;
                continue;
            }
            int errno = Marshal.GetLastPInvokeError();
            if (copied == 0 || errno is LinuxFile.EXDEV or LinuxFile.ENOSYS or LinuxFile.EOPNOTSUPP or LinuxFile.EINVAL)
            {
                CopyByReading(source, target, inOffset, left);
                return;
            }
            if (errno == LinuxFile.EINTR) continue;
            throw SparseFileErrors.FromErrno(errno, $"copying {sourcePath} to {targetPath}");
        }
    }

    private static void CopyByReading(SafeFileHandle source, SafeFileHandle target, long offset, long length)
    {
        var buffer = new byte[1 << 20];
        while (length > 0)
        {
            int read = RandomAccess.Read(source, buffer.AsSpan(0, (int)Math.Min(buffer.Length, length)), offset);
            if (read == 0) return;
            RandomAccess.Write(target, buffer.AsSpan(0, read), offset);
            offset += read;
            length -= read;
        }
    }
}
