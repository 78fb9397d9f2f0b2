using System.Diagnostics;

namespace ManagedDisks.IntegrationTests;

/// <summary>The daemon as an operator meets it: default start, configuration errors, locks, stop.</summary>
[NonParallelizable]
public class DaemonTests
{
    [Test]
    public async Task EmbeddedDefaultServesA1GiBDisk0AndSaysHowToAttachIt()
    {
        string workDir = DaemonProcess.NewWorkDir();
        string stateDir = Path.Combine(workDir, "managed-disks-state");
        await using var daemon = await DaemonProcess.StartAsync(["serve"], workDir, stateDir);

        var size = await Tool.RunOkAsync("nbdinfo", "--size", daemon.Uri("disk0"));
        Assert.That(size.StdOut.Trim(), Is.EqualTo((1L << 30).ToString()));
        var tcp = await Tool.RunOkAsync("nbdinfo", "--size", "nbd://127.0.0.1:10809/disk0");
        Assert.That(tcp.StdOut.Trim(), Is.EqualTo((1L << 30).ToString()));

        Assert.That(daemon.Output, Does.Contain($"sudo nbd-client -unix {stateDir}/nbd.sock /dev/nbd0 -N disk0"));
        Assert.That(daemon.Output, Does.Contain("sudo nbd-client 127.0.0.1 10809 /dev/nbd0 -N disk0"));
        Assert.That(daemon.Output, Does.Contain("nbd-client -d /dev/nbd0"));

        var backing = new FileInfo(Path.Combine(stateDir, "disks", "disk0.img"));
        Assert.That(backing.Length, Is.EqualTo((1L << 30) + (1 << 20)), "1 MiB of headers, then the payload");
        Assert.That(AllocatedBytes(backing.FullName), Is.LessThan(1 << 20), "the disk must be created sparse");
    }

    [Test]
    public async Task DisksAreCreatedOnFirstStartAndKeptAcrossRestarts()
    {
        await using var first = await DaemonProcess.StartAsync(DaemonProcess.Disk("a", "8M") + DaemonProcess.Disk("b", "16M"));
        string file = Path.Combine(Path.GetTempPath(), $"md-{Guid.NewGuid():N}.bin");
        await File.WriteAllBytesAsync(file, RandomBytes(1 << 20));
        try
        {
            await Tool.RunOkAsync("qemu-img", "convert", "-n", "-f", "raw", "-O", "raw", file, first.Uri("b"));
            Assert.That(await first.StopAsync(), Is.Zero);

            var second = await DaemonProcess.StartAsync(["serve", "--config", Path.Combine(first.WorkDir, "disks.toml")], first.WorkDir, first.StateDir);
            await using var _ = second;
            Assert.That(second.Output, Does.Not.Contain("Created disk"));
            var compare = await Tool.RunAsync("qemu-img", ["compare", "-f", "raw", "-F", "raw", file, second.Uri("b")]);
            Assert.That(compare.StdOut, Does.Contain("Images are identical").Or.Contain("Warning"), compare.ToString());
            var list = await Tool.RunOkAsync("nbdinfo", "--list", "--json", second.Uri("a"));
            Assert.That(list.StdOut, Does.Contain("\"a\"").And.Contain("\"b\""));
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Test]
    public async Task InvalidConfigurationListsEveryProblemAndExits2()
    {
        string workDir = DaemonProcess.NewWorkDir();
        string config = Path.Combine(workDir, "disks.toml");
        await File.WriteAllTextAsync(config, """
            [daemon]
            listen = ["udp:1.2.3.4:5"]
            [[disk]]
            name = "x"
            size = "lots"
            """);
        var daemon = DaemonProcess.Launch(["serve", "--config", config], workDir, workDir);
        Assert.That(await daemon.WaitForExitAsync(TimeSpan.FromSeconds(60)), Is.EqualTo(2));
        Assert.That(daemon.Output, Does.Contain($"{config} has 2 problems"));
        Assert.That(daemon.Output, Does.Contain("must start with unix: or tcp:"));
        Assert.That(daemon.Output, Does.Contain("size 'lots'"));
        Assert.That(Directory.Exists(Path.Combine(workDir, "disks")), Is.False, "nothing may be created from a bad configuration");
    }

    [Test]
    public async Task MissingConfigFileIsReported()
    {
        string workDir = DaemonProcess.NewWorkDir();
        var daemon = DaemonProcess.Launch(["serve", "--config", "/nonexistent/disks.toml"], workDir, workDir);
        Assert.That(await daemon.WaitForExitAsync(TimeSpan.FromSeconds(60)), Is.EqualTo(2));
        Assert.That(daemon.Output, Does.Contain("cannot read the configuration file /nonexistent/disks.toml"));
    }

    [Test]
    public async Task ASecondDaemonOnTheSameDiskIsRefusedAndTheFirstKeepsServing()
    {
        await using var first = await DaemonProcess.StartAsync(DaemonProcess.Disk("disk0", "8M"));
        // The second daemon shares the backing file but listens elsewhere.
        string otherState = Path.Combine(first.WorkDir, "other");
        string config = Path.Combine(first.WorkDir, "second.toml");
        await File.WriteAllTextAsync(config, DaemonProcess.Config(otherState,
            DaemonProcess.Disk("disk0", "8M", $"path = \"{first.StateDir}/disks/disk0.img\"")));

        var second = DaemonProcess.Launch(["serve", "--config", config], first.WorkDir, otherState);
        Assert.That(await second.WaitForExitAsync(TimeSpan.FromSeconds(60)), Is.Not.Zero);
        Assert.That(second.Output, Does.Contain("is locked by another process"));

        await Tool.RunOkAsync("qemu-io", "-f", "raw", "-c", "write -P 0x5a 0 64k", "-c", "read -P 0x5a 0 64k", first.Uri());
    }

    [Test]
    public async Task ASecondDaemonOnTheSameSocketIsRefused()
    {
        await using var first = await DaemonProcess.StartAsync(DaemonProcess.Disk("disk0", "8M"));
        string config = Path.Combine(first.WorkDir, "second.toml");
        string text = DaemonProcess.Config(Path.Combine(first.WorkDir, "other"), DaemonProcess.Disk("disk0", "8M"))
            .Replace($"{first.WorkDir}/other/nbd.sock", first.SocketPath);
        await File.WriteAllTextAsync(config, text);

        var second = DaemonProcess.Launch(["serve", "--config", config], first.WorkDir, first.StateDir);
        Assert.That(await second.WaitForExitAsync(TimeSpan.FromSeconds(60)), Is.Not.Zero);
        Assert.That(second.Output, Does.Contain("is served by another running daemon"));
        await Tool.RunOkAsync("nbdinfo", "--size", first.Uri());
    }

    [Test]
    public async Task SigtermFinishesCleanlyAndWhatWasWrittenSurvivesARestart()
    {
        var daemon = await DaemonProcess.StartAsync(DaemonProcess.Disk("disk0", "8M"));
        await using var _ = daemon;
        await Tool.RunOkAsync("qemu-io", "-f", "raw", "-c", "write -P 0x11 0 1M", daemon.Uri());
        Assert.That(await daemon.StopAsync(), Is.Zero);
        Assert.That(daemon.Output, Does.Contain("ManagedDisks stopped"));
        Assert.That(File.Exists(daemon.SocketPath), Is.False);

        var again = await DaemonProcess.StartAsync(["serve", "--config", Path.Combine(daemon.WorkDir, "disks.toml")], daemon.WorkDir, daemon.StateDir);
        await using var __ = again;
        await Tool.RunOkAsync("qemu-io", "-f", "raw", "-c", "read -P 0x11 0 1M", again.Uri());
    }

    [Test]
    public async Task RequestsArrivingDuringAStopGetEshutdown()
    {
        var daemon = await DaemonProcess.StartAsync(DaemonProcess.Disk("disk0", "8M"));
        await using var _ = daemon;
        await using var client = await RawNbdClient.TransmittingAsync(daemon.SocketPath, "disk0");
        Posix.Kill(daemon.ProcessId, Posix.SIGTERM);
        await daemon.WaitForLogAsync("requests now get ESHUTDOWN");

        await client.SendRequestAsync(0, 0, 9, 0, 4096);
        Assert.That(await client.ReadSimpleReplyAsync(), Is.EqualTo((108u, 9UL)), "ESHUTDOWN, and no data");
        await client.SendRequestAsync(0, 2, 10, 0, 0); // the soft disconnect a client owes after ESHUTDOWN
        Assert.That(await daemon.WaitForExitAsync(TimeSpan.FromSeconds(30)), Is.Zero);
        Assert.That(daemon.Output, Does.Contain("ManagedDisks stopped"));
    }

    [Test]
    public async Task ASecondStopSignalExitsAtOnce()
    {
        var daemon = await DaemonProcess.StartAsync(DaemonProcess.Disk("disk0", "8M"));
        await using var _ = daemon;
        // An attached client keeps the graceful stop waiting (ESHUTDOWN grace) long enough to interrupt it.
        await using var client = await RawNbdClient.TransmittingAsync(daemon.SocketPath, "disk0");
        Posix.Kill(daemon.ProcessId, Posix.SIGTERM);
        await daemon.WaitForLogAsync("ManagedDisks stopping");
        Posix.Kill(daemon.ProcessId, Posix.SIGTERM);
        Assert.That(await daemon.WaitForExitAsync(TimeSpan.FromSeconds(30)), Is.EqualTo(143));
        Assert.That(daemon.Output, Does.Not.Contain("ManagedDisks stopped"), "the graceful stop was cut short");
    }

    [Test]
    public async Task ReadOnlyDiskRefusesWritesWithEperm()
    {
        await using var daemon = await DaemonProcess.StartAsync(DaemonProcess.Disk("ro", "8M", "read_only = true"));
        var info = await Tool.RunOkAsync("nbdinfo", "--json", daemon.Uri("ro"));
        Assert.That(info.StdOut, Does.Contain("\"is_read_only\": true"));
        var write = await Tool.RunAsync("nbdsh", ["-u", daemon.Uri("ro"), "-c",
            "h.set_strict_mode(0)\ntry:\n  h.pwrite(b'x'*512, 0)\nexcept nbd.Error as e:\n  print(e.errno)"]);
        Assert.That(write.StdOut.Trim(), Is.EqualTo("EPERM"), write.ToString());
    }

    private static byte[] RandomBytes(int count)
    {
        var bytes = new byte[count];
        Random.Shared.NextBytes(bytes);
        return bytes;
    }

    internal static long AllocatedBytes(string path)
    {
        var stat = Process.Start(new ProcessStartInfo("stat", ["-c", "%b %B", path]) { RedirectStandardOutput = true })!;
        string[] parts = stat.StandardOutput.ReadToEnd().Trim().Split(' ');
        stat.WaitForExit();
        return long.Parse(parts[0]) * long.Parse(parts[1]);
    }
}
