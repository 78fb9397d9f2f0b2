namespace ManagedDisks.IntegrationTests;

/// <summary>
/// Crash durability, the short version of tests/reliability/durability.py (whose long runs are in
/// docs/RELIABILITY.md): writers journal what they wrote and what each FLUSH covered, the daemon
/// gets SIGKILL mid-stream, and after a restart every sector must hold its last durable version
/// or a later one.
/// </summary>
[NonParallelizable]
public class DurabilityTests
{
    private string _work = "";

    [SetUp]
    public void NewWorkFolder() => _work = DaemonProcess.NewWorkDir();

    [TearDown]
    public void DeleteWorkFolder() => ReliabilityScript.DeleteWorkIfPassed(_work);

    [Test]
    public async Task SigkillDuringWritesAndFlushesLosesNoDurableByte()
    {
        Tool.Require("nbdsh"); // python3-libnbd, which the checker imports
        var result = await ReliabilityScript.RunAsync("python3", "durability.py",
            ["--trials", "3", "--max-delay", "1.5", "--daemon", ReliabilityScript.DaemonDll, "--work", _work]);

        Assert.That(result.ExitCode, Is.Zero, "the checker reported lost bytes or failed");
        Assert.That(ReliabilityScript.Number(result.StdOut, @"durability: 3 trials .* (\d+) bytes lost"), Is.Zero);
        // The check means something only if the kills hit durable data: most sectors had one.
        double checkedSectors = ReliabilityScript.Number(result.StdOut, @"(\d+) sectors checked, \d+ sectors with a durable write");
        double durable = ReliabilityScript.Number(result.StdOut, @"(\d+) sectors with a durable write");
        Assert.That(checkedSectors, Is.EqualTo(3L * 64 * 1024 * 1024 / 512));
        Assert.That(durable, Is.GreaterThan(0));
    }

    [Test]
    public async Task TheCheckerCatchesAServerThatLosesWritesAtACrash()
    {
        // nbdkit memory keeps the disk in its own memory: SIGKILL loses every write. A checker
        // that passed this would prove nothing about the daemon.
        Tool.Require("nbdkit");
        Tool.Require("nbdsh");
        var result = await ReliabilityScript.RunAsync("python3", "durability.py",
            ["--trials", "1", "--control", "--work", _work]);

        Assert.That(result.ExitCode, Is.EqualTo(1), "the checker did not fail against a server that forgets");
        Assert.That(ReliabilityScript.Number(result.StdOut, @"durability: 1 trials .* (\d+) bytes lost"), Is.GreaterThan(0));
        Assert.That(result.StdOut, Does.Contain("LOST sector"));
    }
}
