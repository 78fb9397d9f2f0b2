namespace ManagedDisks.IntegrationTests.Infrastructure;

/// <summary>
/// A small tmpfs mounted for one test: a real file system that fills up, so the daemon's
/// writes meet ENOSPC from the kernel rather than from a mock. Needs the right to mount
/// (root with CAP_SYS_ADMIN, as in CI's container); where mounting is refused the test is skipped.
/// </summary>
public sealed class TmpfsMount : IAsyncDisposable
{
    private TmpfsMount(string path) => Path = path;

    public string Path { get; }

    public static async Task<TmpfsMount> MountAsync(string path, long sizeBytes)
    {
        Tool.Require("mount");
        Directory.CreateDirectory(path);
        var mounted = await Tool.RunAsync("mount", ["-t", "tmpfs", "-o", $"size={sizeBytes},mode=0700", "tmpfs", path]);
        if (mounted.ExitCode != 0) Assert.Ignore($"cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN): {mounted.StdErr.Trim()}");
        return new TmpfsMount(path);
    }

    public async ValueTask DisposeAsync()
    {
        // Lazy: a daemon that failed to stop must not leave the mount behind for the next run.
        await Tool.RunAsync("umount", ["--lazy", Path]);
    }
}
