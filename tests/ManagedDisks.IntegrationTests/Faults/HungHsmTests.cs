using System.Diagnostics;
using System.Text.Json;

namespace ManagedDisks.IntegrationTests.Faults;

/// <summary>
/// The HSM holding an encryption set's key stops answering while the set's disk is attached.
/// RSA never runs on the I/O path, so the disk must keep serving reads and writes, new clients
/// must still attach, and the admin API's disk and connection listings must answer; when the HSM
/// answers again, key polling resumes. A second disk waits for a grant, so the daemon's key
/// poller (every second here) is itself blocked inside the HSM for the whole hang.
/// </summary>
[NonParallelizable]
public class HungHsmTests
{
    private static readonly string Cli = Path.Combine(AppContext.BaseDirectory, "managed-disks.dll");

    [Test]
    public async Task AttachedDisksKeepServingWhileTheHsmHangs()
    {
        // The admin client gives up after 2 minutes: longer hangs would fail the status calls by design.
        var hangFor = TimeSpan.FromSeconds(Math.Min(Scale.Get("FAULTS_HSM_HANG_SECONDS", quick: 3), 90));
        int statusCallers = Scale.Get("FAULTS_HSM_STATUS_CALLERS", quick: 2);
        Tool.Require("fio");
        string work = DaemonProcess.NewWorkDir();
        var hsm = await HungHsm.CreateAsync(work);
        string state = Path.Combine(work, "state");
        string config = Path.Combine(work, "disks.toml");
        await File.WriteAllTextAsync(config, DaemonProcess.Config(state, $$"""
            [timers]
            key_poll_interval = "1s"

            [[key_store]]
            name = "hsm1"
            type = "pkcs11"
            module = "{{hsm.Module}}"
            token_label = "{{HungHsm.TokenLabel}}"
            pin_file = "{{hsm.PinFile}}"

            [[encryption_set]]
            name = "des1"
            key_store = "hsm1"
            key = "kek1"

            [[encryption_set]]
            name = "des2"
            key_store = "hsm1"
            key = "kek2"

            """ + DaemonProcess.Disk("disk1", "64M", "encryption_set = \"des1\"") + DaemonProcess.Disk("waiting", "8M", "encryption_set = \"des2\"")));
        Task<ToolResult> Cli(params string[] arguments) =>
            Tool.RunAsync("dotnet", [HungHsmTests.Cli, .. arguments, "--config", config], hsm.Environment, TimeSpan.FromSeconds(60));
        foreach (var command in new[]
                 {
                     new[] { "hsm", "key", "create", "kek1", "--size", "2048" }, ["hsm", "key", "create", "kek2", "--size", "2048"],
                     ["hsm", "grant", "--key", "kek1", "--identity", "encryption-set:des1", "--ops", "wrapKey,unwrapKey"],
                 })
            Assert.That((await Cli(command)).ExitCode, Is.Zero, string.Join(' ', command));

        await using var daemon = await DaemonProcess.StartAsync(["serve", "--config", config], work, state, environment: hsm.Environment);
        await daemon.WaitForLogAsync("Disk 'waiting' is not served: .*grant");
        await Tool.RunOkAsync("qemu-io", "-f", "raw", "-c", "write -P 0x5e 0 1M", daemon.Uri("disk1"));

        hsm.Hang();
        string blockedIn = await hsm.WaitForBlockedCallAsync(TimeSpan.FromSeconds(30));

        // `status` answers from the last key poll, never from the store: it must answer during the
        // hang. Several callers, as a monitoring system polling status during an outage would be.
        var statuses = Enumerable.Range(0, statusCallers)
            .Select(_ => Tool.RunAsync("dotnet", [HungHsmTests.Cli, "status", "--config", config], hsm.Environment, TimeSpan.FromMinutes(3))).ToArray();
        var served = Stopwatch.StartNew();
        long bytes = 0;
        int rounds = 0;
        do
        {
            bytes += await FioWriteAndVerifyAsync(daemon.Uri("disk1"));
            rounds++;
        } while (served.Elapsed < hangFor);
        served.Stop();
        var list = await Cli("disk", "list");
        Assert.That(list.ExitCode, Is.Zero, list.ToString());
        Assert.That(list.StdOut, Does.Contain("disk1"));
        var connections = await Cli("connections");
        Assert.That(connections.ExitCode, Is.Zero, connections.ToString());
        await Task.WhenAll(statuses).WaitAsync(TimeSpan.FromSeconds(60));
        int statusAnswered = statuses.Count(t => t.IsCompleted && t.Result.ExitCode == 0);
        Assert.That(statusAnswered, Is.EqualTo(statusCallers), "status answered during the hang");
        string[] blockedCalls = hsm.BlockedCalls;
        Assert.That(daemon.HasExited, Is.False);
        Assert.That(blockedCalls, Is.Not.Empty, "the HSM was called during the hang, or the test proves nothing");

        hsm.Answer();
        foreach (var after in await Task.WhenAll(statuses))
        {
            Assert.That(after.ExitCode, Is.Zero, $"status after the HSM answers again:\n{after}");
            Assert.That(after.StdOut, Does.Contain("set des1: key hsm1/kek1 Enabled"));
        }
        // Key polling goes on: granting the waiting disk's key brings it online.
        Assert.That((await Cli("hsm", "grant", "--key", "kek2", "--identity", "encryption-set:des2", "--ops", "wrapKey,unwrapKey")).ExitCode, Is.Zero);
        await daemon.WaitForLogAsync("Disk 'waiting' is served now");
        await Tool.RunOkAsync("qemu-io", "-f", "raw", "-c", "read -P 0x5e 0 1M", daemon.Uri("disk1"));

        Scale.Figure($"hsm hung {served.Elapsed.TotalSeconds:F0} s (first blocked call {blockedIn}; calls blocked in the module: {string.Join(", ", blockedCalls)}): " +
                     $"{rounds} fio write+verify rounds, {bytes >> 20} MiB written and verified on disk1 over new connections; " +
                     $"disk list, connections and {statusAnswered} of {statusCallers} status calls answered during the hang");
    }

    /// <summary>A fresh fio connection writes 16 MiB at random with checksums and reads them back; returns the bytes written.</summary>
    private static async Task<long> FioWriteAndVerifyAsync(string uri)
    {
        var fio = await Tool.RunAsync("fio", ["--name=hung-hsm", "--ioengine=nbd", $"--uri={uri}", "--rw=randwrite", "--bs=4k",
            "--offset=16m", "--size=16m", "--iodepth=8", "--verify=crc32c", "--do_verify=1", "--verify_fatal=1", "--output-format=json"],
            timeout: TimeSpan.FromMinutes(2));
        Assert.That(fio.ExitCode, Is.Zero, fio.ToString());
        var job = JsonDocument.Parse(fio.StdOut[fio.StdOut.IndexOf('{')..]).RootElement.GetProperty("jobs")[0];
        Assert.That(job.GetProperty("error").GetInt32(), Is.Zero, fio.StdOut);
        return job.GetProperty("write").GetProperty("io_bytes").GetInt64();
    }
}
