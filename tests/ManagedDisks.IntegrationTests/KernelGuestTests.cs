namespace ManagedDisks.IntegrationTests;

/// <summary>
/// What the product exists for: the Linux kernel's nbd driver, attached with the stock
/// nbd-client, running a file system on a ManagedDisks disk. The kernel runs in a qemu (TCG)
/// guest because the host has no nbd module; see scripts/guest/README.md.
/// </summary>
[NonParallelizable]
public class KernelGuestTests
{
    [Test]
    public async Task KernelAttachesMakesExt4WritesReadsBackAndFsckIsClean()
    {
        await using var daemon = await DaemonProcess.StartAsync(DaemonProcess.Disk("guestdisk", "1G"));
        string script = Path.Combine(AppContext.BaseDirectory, "scripts", "guest", "kernel-attach.sh");
        // The initramfs is cached per kernel, so later runs only boot.
        var result = await Tool.RunAsync("bash", [script, daemon.SocketPath, "guestdisk", "/tmp/md-guest-cache"], timeout: TimeSpan.FromMinutes(8));
        if (result.ExitCode == 77) Assert.Ignore($"the guest cannot run here: {result.StdOut}{result.StdErr}");

        Assert.That(result.ExitCode, Is.Zero, result.ToString());
        Assert.That(result.StdOut + result.StdErr, Does.Contain("GUEST-RESULT: PASS"));
        await daemon.WaitForLogAsync("attached export 'guestdisk'");

        // Independent check on the host, after a restart: the decrypted disk holds a clean ext4.
        Assert.That(await daemon.StopAsync(), Is.Zero);
        await using var again = await DaemonProcess.StartAsync(["serve", "--config", Path.Combine(daemon.WorkDir, "disks.toml")], daemon.WorkDir, daemon.StateDir);
        string copy = Path.Combine(daemon.WorkDir, "guestdisk.plain");
        await Tool.RunOkAsync("nbdcopy", again.Uri("guestdisk"), copy);
        var fsck = await Tool.RunAsync("e2fsck", ["-fn", copy]);
        File.Delete(copy);
        Assert.That(fsck.ExitCode, Is.Zero, fsck.ToString());
    }
}
