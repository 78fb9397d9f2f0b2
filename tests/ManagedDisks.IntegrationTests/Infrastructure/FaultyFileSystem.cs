namespace ManagedDisks.IntegrationTests.Infrastructure;

/// <summary>
/// A FUSE file system (native/faultyfs.c) mirroring a folder, whose files fail chosen byte
/// ranges with EIO as a disk with bad sectors does: a real I/O error under the daemon's
/// backing file, changed while the daemon runs. Needs /dev/fuse and libfuse3-dev; skipped without.
/// </summary>
public sealed class FaultyFileSystem : IAsyncDisposable
{
    private readonly string _faultsFile;
    private readonly List<string> _faults = [];

    private FaultyFileSystem(string mountPoint, string faultsFile)
    {
        MountPoint = mountPoint;
        _faultsFile = faultsFile;
    }

    public string MountPoint { get; }

    /// <summary>Mounts a new faultyfs under <paramref name="workDir"/>; returns once the mount is in place.</summary>
    public static async Task<FaultyFileSystem> MountAsync(string workDir)
    {
        if (!File.Exists("/dev/fuse")) Assert.Ignore("/dev/fuse is missing: FUSE is not available here");
        string program = await NativeProgram.BuildAsync("faultyfs.c", "fuse3");
        string source = Path.Combine(workDir, "faultyfs-source");
        string mountPoint = Path.Combine(workDir, "faultyfs");
        string faults = Path.Combine(workDir, "faultyfs.faults");
        Directory.CreateDirectory(source);
        Directory.CreateDirectory(mountPoint);
        // Without -f, fuse_main returns to its parent only after mounting: exit 0 means mounted.
        var mounted = await Tool.RunAsync(program, [source, faults, mountPoint]);
        if (mounted.ExitCode != 0) Assert.Ignore($"cannot mount a FUSE file system here: {mounted}");
        return new FaultyFileSystem(mountPoint, faults);
    }

    /// <summary>From now on reads overlapping [offset, offset+length) of any file fail with EIO.</summary>
    public void FailReads(long offset, long length) => Add($"read {offset} {length}");

    /// <summary>From now on writes overlapping [offset, offset+length) of any file fail with EIO.</summary>
    public void FailWrites(long offset, long length) => Add($"write {offset} {length}");

    /// <summary>No more faults: every range reads and writes again.</summary>
    public void Heal()
    {
        _faults.Clear();
        Write();
    }

    private void Add(string fault)
    {
        _faults.Add(fault);
        Write();
    }

    // faultyfs re-reads the file when its size or mtime changes; replace it atomically so it never sees half a line.
    private void Write()
    {
        string temporary = _faultsFile + ".tmp";
        File.WriteAllLines(temporary, _faults);
        File.Move(temporary, _faultsFile, overwrite: true);
    }

    public async ValueTask DisposeAsync()
    {
        await Tool.RunAsync("umount", ["--lazy", MountPoint]);
    }
}
