using System.Diagnostics;
using ManagedDisks.Fuzz.Live;

namespace ManagedDisks.IntegrationTests;

/// <summary>
/// The real daemon against thousands of plausible-but-wrong clients (tests/ManagedDisks.Fuzz/Live):
/// after every batch it must still be alive, serve a well-behaved client (nbdsh writes and reads
/// back, nbdinfo lists), hang up on every wrong client that has finished sending, log no
/// unexpected failure, and give back what the connections held: descriptors return to the
/// baseline and resident memory stays bounded. CI runs a short version; fuzz.sh live runs the
/// long one (MD_LIVE_FUZZ_SEQUENCES, MD_LIVE_FUZZ_BATCHES, MD_LIVE_FUZZ_SEED) and records it.
/// </summary>
[TestFixture]
public class LiveFuzzTests
{
    private const long MiB = 1024 * 1024;
    private static readonly LiveExport[] Exports = [new("disk0", 64 * MiB, false), new("ro", 4 * MiB, true)];

    [Test]
    public async Task Daemon_survives_wrong_clients_and_gives_back_what_they_held()
    {
        Tool.Require("nbdsh");
        Tool.Require("nbdinfo");
        long sequences = long.Parse(Environment.GetEnvironmentVariable("MD_LIVE_FUZZ_SEQUENCES") ?? "3000");
        int batches = int.Parse(Environment.GetEnvironmentVariable("MD_LIVE_FUZZ_BATCHES") ?? "3");
        int seed = int.Parse(Environment.GetEnvironmentVariable("MD_LIVE_FUZZ_SEED") ?? "1");

        string workDir = DaemonProcess.NewWorkDir();
        string stateDir = Path.Combine(workDir, "state");
        string config = Path.Combine(workDir, "disks.toml");
        await File.WriteAllTextAsync(config, DaemonProcess.Config(stateDir,
            DaemonProcess.Disk("disk0", "64M") + DaemonProcess.Disk("ro", "4M", "read_only = true")));
        // Only errors from the NBD layer: thousands of refused clients would otherwise flood the log.
        await using var daemon = await DaemonProcess.StartAsync(["serve", "--config", config], workDir, stateDir,
            environment: new Dictionary<string, string> { ["Logging__LogLevel__ManagedDisks.Nbd"] = "Error" });
        int pid = daemon.ProcessId;

        // Warm up (JIT, thread pool, buffers) so the baseline is the daemon at work, not at start.
        await LiveFuzzer.RunAsync(daemon.SocketPath, Exports, seed: -seed, count: 200);
        await CheckGoodClientAsync(daemon, 0);
        int baselineSockets = ProcessResources.OpenSockets(pid);
        int baselineFds = ProcessResources.OpenDescriptors(pid);
        long baselineRss = ProcessResources.ResidentBytes(pid);
        Report($"baseline after warm-up: RSS {baselineRss / MiB} MiB, {baselineFds} fds of which {baselineSockets} sockets");

        long totalSequences = 0, totalFrames = 0;
        long peakRss = baselineRss;
        var clock = Stopwatch.StartNew();
        for (int batch = 0; batch < batches; batch++)
        {
            long count = sequences / batches;
            var result = await LiveFuzzer.RunAsync(daemon.SocketPath, Exports, seed * 1000 + batch, count);
            totalSequences += result.Sequences;
            totalFrames += result.Frames;

            Assert.That(daemon.HasExited, Is.False, "the daemon died");
            Assert.That(result.Hangs, Is.Empty, "the daemon kept connections open after the client's end of stream");
            await CheckGoodClientAsync(daemon, batch + 1);
            var batchTime = clock.Elapsed;
            int sockets = await ProcessResources.WaitForSocketsAtMostAsync(pid, baselineSockets, TimeSpan.FromSeconds(30));
            int fds = ProcessResources.OpenDescriptors(pid);
            long rss = ProcessResources.ResidentBytes(pid);
            peakRss = Math.Max(peakRss, rss);
            Report($"batch {batch + 1}/{batches}: {result.Sequences} sequences, {result.Frames} frames, {result.BytesSent} bytes sent, " +
                   $"{result.BytesReceived} received in {batchTime.TotalSeconds:F0} s so far; then RSS {rss / MiB} MiB, {fds} fds of which {sockets} sockets");
            if (batch == 0) Report("kinds (first step): " + string.Join(", ", result.Kinds.Select(k => $"{k.Key} {k.Value}")));
            Assert.That(sockets, Is.LessThanOrEqualTo(baselineSockets), "sockets not given back after the connections closed");
            Assert.That(fds, Is.LessThanOrEqualTo(baselineFds + 32), "descriptors grew with the number of clients");
        }

        long finalRss = ProcessResources.ResidentBytes(pid);
        Report($"total: {totalSequences} sequences, {totalFrames} frames in {clock.Elapsed.TotalSeconds:F0} s; " +
               $"RSS baseline {baselineRss / MiB} MiB, peak {peakRss / MiB} MiB, final {finalRss / MiB} MiB");
        // Bounded: the managed heap and pools may keep some of what they grew to, but not in proportion to the clients.
        Assert.That(finalRss, Is.LessThan(baselineRss + 256 * MiB), "resident memory grew with the number of clients");
        Assert.That(daemon.Output, Does.Not.Contain("failed unexpectedly"), "the daemon logged an unexpected failure");
    }

    /// <summary>A well-behaved client still gets its data back and sees the exports.</summary>
    private static async Task CheckGoodClientAsync(DaemonProcess daemon, int round)
    {
        long offset = (round % 64) * MiB;
        await Tool.RunOkAsync("nbdsh", "-u", daemon.Uri("disk0"), "-c",
            $"h.pwrite(bytes([{round % 251}]) * 65536, {offset}); h.flush(); assert h.pread(65536, {offset}) == bytes([{round % 251}]) * 65536");
        var list = await Tool.RunOkAsync("nbdinfo", "--list", daemon.Uri(""));
        Assert.That(list.StdOut, Does.Contain("disk0").And.Contain("ro"));
    }

    private static void Report(string line)
    {
        TestContext.Out.WriteLine(line);
        if (Environment.GetEnvironmentVariable("MD_LIVE_FUZZ_REPORT") is { Length: > 0 } path) File.AppendAllText(path, line + "\n");
    }
}
