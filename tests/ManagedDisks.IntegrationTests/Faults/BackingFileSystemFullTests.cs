using System.Text.Json;

namespace ManagedDisks.IntegrationTests.Faults;

/// <summary>
/// The backing file's file system fills up (a real tmpfs, smaller than the disk): clients get
/// ENOSPC, not EIO; nothing acknowledged is lost; TRIM frees space and the disk works on; the
/// daemon stays up with its header intact, and after a restart everything reads back.
/// </summary>
[NonParallelizable]
public class BackingFileSystemFullTests
{
    private const long FileSystemSize = 8 << 20;

    [Test]
    public async Task AFullFileSystemIsEnospcForTheClientAndCorruptsNothing()
    {
        int cycles = Scale.Get("FAULTS_ENOSPC_CYCLES", quick: 2);
        string work = DaemonProcess.NewWorkDir();
        await using var small = await TmpfsMount.MountAsync(Path.Combine(work, "small"), FileSystemSize);
        string state = Path.Combine(work, "state");
        string config = Path.Combine(work, "disks.toml");
        await File.WriteAllTextAsync(config, DaemonProcess.Config(state,
            DaemonProcess.Disk("disk0", "32M", $"path = \"{small.Path}/disk0.img\"")));
        var script = new Dictionary<string, string>
        {
            ["CYCLES"] = cycles.ToString(),
            ["STATE_FILE"] = Path.Combine(work, "fill.state"),
        };

        await using (var daemon = await DaemonProcess.StartAsync(["serve", "--config", config], work, state))
        {
            var fill = await NbdshAsync("fill-until-enospc.py", daemon.Uri(), script);
            Assert.That(fill.ExitCode, Is.Zero, fill.ToString());
            foreach (string line in fill.StdOut.Split('\n').Where(l => l.StartsWith("FIGURES: ", StringComparison.Ordinal)))
                Scale.Figure("enospc " + line["FIGURES: ".Length..]);

            Assert.That(daemon.HasExited, Is.False);
            await daemon.WaitForLogAsync(@"Write at \d+\+\d+ failed with NoSpace: write of .*disk0\.img \(No space left on device");
            Assert.That(daemon.Output, Does.Not.Contain("failed with InputOutput"));
            await AssertHeaderIntactAsync(config);
            Assert.That(await daemon.StopAsync(), Is.Zero, "the daemon stops cleanly, flushing a disk on a full file system");
        }

        // A fresh daemon opens the disk (both header copies valid) and reads back the last fill.
        await using (var again = await DaemonProcess.StartAsync(["serve", "--config", config], work, state))
        {
            var verify = await NbdshAsync("fill-until-enospc.py", again.Uri(), new(script) { ["MODE"] = "verify" });
            Assert.That(verify.ExitCode, Is.Zero, verify.ToString());
            Scale.Figure("enospc " + verify.StdOut.Trim()["FIGURES: ".Length..]);
            await AssertHeaderIntactAsync(config);
        }
    }

    private static async Task AssertHeaderIntactAsync(string config)
    {
        var show = await Tool.RunAsync("dotnet", [Path.Combine(AppContext.BaseDirectory, "managed-disks.dll"), "disk", "show", "disk0", "--config", config, "--json"]);
        Assert.That(show.ExitCode, Is.Zero, show.ToString());
        var copies = JsonDocument.Parse(show.StdOut).RootElement.GetProperty("header_copies");
        Assert.That(copies.EnumerateArray().Select(c => c.GetProperty("valid").GetBoolean()), Is.All.True, show.StdOut);
    }

    internal static Task<ToolResult> NbdshAsync(string script, string uri, Dictionary<string, string> environment)
    {
        string path = Path.Combine(AppContext.BaseDirectory, "scripts", "faults", script);
        return Tool.RunAsync("nbdsh", ["-c", $"exec(open('{path}').read())"], new Dictionary<string, string>(environment) { ["URI"] = uri },
            timeout: TimeSpan.FromMinutes(30));
    }
}
