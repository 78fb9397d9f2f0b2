namespace ManagedDisks.IntegrationTests;

/// <summary>
/// The short version of tests/reliability/load.sh (the long run is in docs/RELIABILITY.md):
/// fio verify clients on several disks at once, then the daemon's descriptors and sockets must
/// be back at their baseline, with no request error and no connection left.
/// </summary>
[NonParallelizable]
public class LoadTests
{
    private string _work = "";

    [SetUp]
    public void NewWorkFolder() => _work = DaemonProcess.NewWorkDir();

    [TearDown]
    public void DeleteWorkFolder() => ReliabilityScript.DeleteWorkIfPassed(_work);

    [Test]
    public async Task EightFioVerifyClientsOnFourDisksLeaveNoErrorAndNoDescriptorBehind()
    {
        Tool.Require("fio");
        Tool.Require("nbdinfo");
        var environment = new Dictionary<string, string>
        {
            ["DISKS"] = "4", ["JOBS_PER_DISK"] = "2", ["RUNTIME"] = "10", ["SAMPLE"] = "2",
            ["DAEMON"] = ReliabilityScript.DaemonDll, ["WORK"] = _work,
        };
        var result = await ReliabilityScript.RunAsync("bash", "load.sh", [], environment);

        string output = result.StdOut;
        Assert.That(result.ExitCode, Is.Zero, "load.sh failed");
        Assert.That(output, Does.Contain("load: PASS"));
        Assert.That(ReliabilityScript.Number(output, @"load: fio (\d+) jobs, errors 0"), Is.EqualTo(8));
        Assert.That(ReliabilityScript.Number(output, @"written ([\d.]+) GiB"), Is.GreaterThan(0), "fio wrote nothing");
        double baseline = ReliabilityScript.Number(output, @"fds baseline (\d+)");
        Assert.That(ReliabilityScript.Number(output, @"fds baseline \d+, peak (\d+)"), Is.GreaterThanOrEqualTo(baseline + 8),
            "the samples never saw the 8 connections");
        // Assemblies the runtime loads on first use stay open by design; every other descriptor must be released.
        Assert.That(ReliabilityScript.Number(output, @"not assemblies baseline \d+, after (\d+)"),
            Is.EqualTo(ReliabilityScript.Number(output, @"not assemblies baseline (\d+)")));
        Assert.That(ReliabilityScript.Number(output, @"sockets baseline \d+, peak \d+, after (\d+)"),
            Is.EqualTo(ReliabilityScript.Number(output, @"sockets baseline (\d+)")));
        Assert.That(ReliabilityScript.Number(output, @"(\d+) connections left"), Is.Zero);
    }
}
