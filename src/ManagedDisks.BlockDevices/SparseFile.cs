using Microsoft.Win32.SafeHandles;

namespace ManagedDisks.BlockDevices;

/// <summary>
/// A disk stored in a sparse regular file: positional I/O, TRIM and zeroing as hole punches,
/// allocation from SEEK_DATA/SEEK_HOLE, FLUSH as fdatasync. One instance is shared by every
/// connection to the disk, so a flush through any of them covers all (multi-conn is safe).
/// The file is locked exclusively while open so that no second daemon or disk entry can
/// write to it behind our back.
/// </summary>
public sealed class SparseFile : IBlockDevice
{
    // Bounds the work of one extent query; the client asks again for the rest.
    private const int MaxExtentsPerQuery = 1024;

    private readonly SafeFileHandle _handle;
    private readonly int _fd;

    private SparseFile(string path, SafeFileHandle handle, long size, bool readOnly)
    {
        Path = path;
        _handle = handle;
        _fd = (int)handle.DangerousGetHandle();
        Size = size;
        Capabilities = new BlockDeviceCapabilities
        {
            IsReadOnly = readOnly,
            CanFlush = true,
            CanFua = true,
            CanTrim = true,
            CanZero = true,
            CanFastZero = true,
            CanExtents = true,
            CanCache = true,
            CanMultiConn = true,
        };
    }

    public string Path { get; }
    public long Size { get; }
    public BlockDeviceCapabilities Capabilities { get; }

    /// <summary>Creates <paramref name="path"/> as a sparse file of <paramref name="size"/> bytes if it does not exist.</summary>
    /// <returns>True if the file was created.</returns>
    public static bool CreateIfMissing(string path, long size)
    {
        try
        {
            using var stream = new FileStream(path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None);
            stream.SetLength(size);
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            return true;
        }
        catch (IOException) when (File.Exists(path))
        {
            return false;
        }
    }

    /// <summary>Opens and exclusively locks an existing backing file.</summary>
    public static SparseFile Open(string path, bool readOnly = false)
    {
        SafeFileHandle handle;
        try
        {
            // FileShare.None takes flock(LOCK_EX|LOCK_NB) on Linux: a second opener fails at once.
            handle = File.OpenHandle(path, FileMode.Open, readOnly ? FileAccess.Read : FileAccess.ReadWrite, FileShare.None);
        }
        catch (FileNotFoundException)
        {
            throw new BlockDeviceException(DeviceError.InputOutput, $"backing file {path} does not exist");
        }
        catch (IOException e) when (e.HResult == 11 /* EWOULDBLOCK */ || e.Message.Contains("used by another process", StringComparison.Ordinal))
        {
            throw new BlockDeviceException(DeviceError.InputOutput,
                $"backing file {path} is locked by another process or disk entry; stop the other daemon, or give each [[disk]] its own file");
        }

        long length = RandomAccess.GetLength(handle);
        return new SparseFile(path, handle, length, readOnly);
    }

    /// <summary>
    /// Opens a backing file read-only without taking its lock, so that tools can inspect a disk
    /// while the daemon serves it. Never use the result to write.
    /// </summary>
    public static SparseFile OpenForInspection(string path)
    {
        int fd = LinuxFile.OpenReadOnlyUnlocked(path, out int errno);
        if (fd < 0)
            throw new BlockDeviceException(DeviceError.InputOutput, errno == 2 ? $"backing file {path} does not exist" : $"cannot open {path}: errno {errno}");
        var handle = new SafeFileHandle(fd, ownsHandle: true);
        return new SparseFile(path, handle, RandomAccess.GetLength(handle), readOnly: true);
    }

    public ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        Span<byte> span = buffer.Span;
        try
        {
            while (!span.IsEmpty)
            {
                int read = RandomAccess.Read(_handle, span, offset);
                if (read == 0)
                {
                    span.Clear(); // past the file's end reads as zeros, never as stale buffer contents
                    break;
                }
                span = span[read..];
                offset += read;
            }
        }
        catch (IOException e)
        {
            throw SparseFileErrors.FromIOException(e, $"read of {Path}");
        }
        return ValueTask.CompletedTask;
    }

    public ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, WriteOptions options, CancellationToken cancellationToken = default)
    {
        try
        {
            RandomAccess.Write(_handle, data.Span, offset);
        }
        catch (IOException e)
        {
            throw SparseFileErrors.FromIOException(e, $"write of {Path}");
        }
        if ((options & WriteOptions.Fua) != 0) LinuxFile.DataSync(_fd, Path);
        return ValueTask.CompletedTask;
    }

    public ValueTask FlushAsync(CancellationToken cancellationToken = default)
    {
        LinuxFile.DataSync(_fd, Path);
        return ValueTask.CompletedTask;
    }

    public ValueTask TrimAsync(long offset, long length, WriteOptions options, CancellationToken cancellationToken = default)
    {
        // TRIM is a hint: a file system without hole punching simply keeps the data.
        int errno = LinuxFile.Fallocate(_fd, LinuxFile.FallocPunchHole | LinuxFile.FallocKeepSize, offset, length);
        if (errno != 0 && errno != LinuxFile.EOPNOTSUPP) throw SparseFileErrors.FromErrno(errno, $"punching a hole in {Path}");
        if ((options & WriteOptions.Fua) != 0) LinuxFile.DataSync(_fd, Path);
        return ValueTask.CompletedTask;
    }

    public ValueTask ZeroAsync(long offset, long length, ZeroOptions options, CancellationToken cancellationToken = default)
    {
        int mode = (options & ZeroOptions.NoHole) != 0
            ? LinuxFile.FallocZeroRange | LinuxFile.FallocKeepSize
            : LinuxFile.FallocPunchHole | LinuxFile.FallocKeepSize;
        int errno = LinuxFile.Fallocate(_fd, mode, offset, length);
        if (errno == LinuxFile.EOPNOTSUPP)
        {
            if ((options & ZeroOptions.FastOnly) != 0)
                throw new BlockDeviceException(DeviceError.NotSupported, $"the file system of {Path} cannot zero without writing");
            WriteZeros(offset, length);
        }
        else if (errno != 0)
        {
            throw SparseFileErrors.FromErrno(errno, $"zeroing a range of {Path}");
        }
        if ((options & ZeroOptions.Fua) != 0) LinuxFile.DataSync(_fd, Path);
        return ValueTask.CompletedTask;
    }

    private void WriteZeros(long offset, long length)
    {
        byte[] zeros = new byte[(int)Math.Min(length, 1 << 20)];
        try
        {
            while (length > 0)
            {
                int chunk = (int)Math.Min(length, zeros.Length);
                RandomAccess.Write(_handle, zeros.AsSpan(0, chunk), offset);
                offset += chunk;
                length -= chunk;
            }
        }
        catch (IOException e)
        {
            throw SparseFileErrors.FromIOException(e, $"writing zeros to {Path}");
        }
    }

    public ValueTask CacheAsync(long offset, long length, CancellationToken cancellationToken = default)
    {
        LinuxFile.WillNeed(_fd, offset, length);
        return ValueTask.CompletedTask;
    }

    public ValueTask<IReadOnlyList<Extent>> GetExtentsAsync(long offset, long length, CancellationToken cancellationToken = default)
    {
        long end = offset + length;
        var extents = new List<Extent>();
        long position = offset;
        while (position < end && extents.Count < MaxExtentsPerQuery)
        {
            long dataStart = LinuxFile.SeekToData(_fd, position, Path);
            if (dataStart < 0 || dataStart >= end)
            {
                extents.Add(new Extent(position, end - position, ExtentFlags.Hole | ExtentFlags.Zero));
                break;
            }
            if (dataStart > position)
            {
                extents.Add(new Extent(position, dataStart - position, ExtentFlags.Hole | ExtentFlags.Zero));
                position = dataStart;
            }
            long holeStart = Math.Min(LinuxFile.SeekToHole(_fd, position, Path), end);
            if (holeStart <= position) holeStart = end; // the file changed under us: report data, always safe
            extents.Add(new Extent(position, holeStart - position, ExtentFlags.Data));
            position = holeStart;
        }
        return ValueTask.FromResult<IReadOnlyList<Extent>>(extents);
    }

    public ValueTask DisposeAsync()
    {
        _handle.Dispose();
        return ValueTask.CompletedTask;
    }
}
