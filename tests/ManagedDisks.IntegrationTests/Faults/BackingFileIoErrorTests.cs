using System.Text.Json;

namespace ManagedDisks.IntegrationTests.Faults;

/// <summary>
/// The backing file returns EIO for some ranges (a FUSE file system with bad "sectors" under
/// the daemon's file): the client gets EIO for requests over those ranges only, every other
/// range keeps serving the right data, a failed write tears no sector, the daemon logs the
/// error with the file and errno and stays up, and a healed range works again.
/// </summary>
[NonParallelizable]
public class BackingFileIoErrorTests
{
    [Test]
    public async Task BadRangesOfTheBackingFileFailWithEioAndNothingElse()
    {
        int trials = Scale.Get("FAULTS_EIO_TRIALS", quick: 2);
        string work = DaemonProcess.NewWorkDir();
        await using var faulty = await FaultyFileSystem.MountAsync(work);
        string state = Path.Combine(work, "state");
        string config = Path.Combine(work, "disks.toml");
        await File.WriteAllTextAsync(config, DaemonProcess.Config(state,
            DaemonProcess.Disk("disk0", "16M", $"path = \"{faulty.MountPoint}/disk0.img\"")));

        await using var daemon = await DaemonProcess.StartAsync(["serve", "--config", config], work, state);
        var show = JsonDocument.Parse((await Tool.RunOkAsync("dotnet", Path.Combine(AppContext.BaseDirectory, "managed-disks.dll"),
            "disk", "show", "disk0", "--config", config, "--json")).StdOut).RootElement;

        var run = await BackingFileSystemFullTests.NbdshAsync("io-error-ranges.py", daemon.Uri(), new()
        {
            ["FAULTS_FILE"] = faulty.FaultsFile,
            ["PAYLOAD_OFFSET"] = show.GetProperty("payload_offset").ToString(),
            ["TRIALS"] = trials.ToString(),
            ["SEED"] = Scale.Get("FAULTS_EIO_SEED", quick: 1).ToString(),
        });
        Assert.That(run.ExitCode, Is.Zero, run.ToString());
        Scale.Figure("eio " + run.StdOut.Trim()["FIGURES: ".Length..]);

        // The operator is told which file failed, where, and how.
        await daemon.WaitForLogAsync(@"Read at \d+\+65536 failed with InputOutput: read of .*disk0\.img \(Input/output error.*errno 5");
        await daemon.WaitForLogAsync(@"Write at \d+\+65536 failed with InputOutput: write of .*disk0\.img \(Input/output error.*errno 5");
        Assert.That(daemon.HasExited, Is.False);
        Assert.That(daemon.Output, Does.Not.Contain("failed unexpectedly"), "an I/O error is an expected failure, not a crash of the request");
        Assert.That(await daemon.StopAsync(), Is.Zero);
    }
}
