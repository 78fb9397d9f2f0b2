namespace ManagedDisks.IntegrationTests.Infrastructure;

/// <summary>
/// A FUSE file system (native/faultyfs.c) mirroring a folder, whose files fail chosen byte
/// ranges with EIO as a disk with bad sectors does: a real I/O error under the daemon's
/// backing file, changed while the daemon runs. Needs /dev/fuse and libfuse3-dev; skipped without.
/// </summary>
public sealed class FaultyFileSystem : IAsyncDisposable
{
    private FaultyFileSystem(string mountPoint, string faultsFile)
    {
        MountPoint = mountPoint;
        FaultsFile = faultsFile;
    }

    public string MountPoint { get; }

    /// <summary>
    /// The fault list: one "read|write|rw OFFSET LENGTH" per line, in bytes of the backing file;
    /// replace it by rename (faultyfs re-reads it when its inode changes). Missing: no faults.
    /// </summary>
    public string FaultsFile { get; }

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

    public async ValueTask DisposeAsync()
    {
        await Tool.RunAsync("umount", ["--lazy", MountPoint]);
    }
}
