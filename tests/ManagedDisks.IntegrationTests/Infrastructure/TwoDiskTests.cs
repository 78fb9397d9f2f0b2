namespace ManagedDisks.IntegrationTests.Infrastructure;

/// <summary>
/// Base of the fixtures that drive a daemon serving two disks (disk0 64 MiB with a description,
/// disk1 32 MiB). Work folders are removed after a pass and kept after a failure, for diagnosis.
/// </summary>
public abstract class TwoDiskTests
{
    protected const long MiB = 1 << 20;
    protected const long Disk0Size = 64 * MiB;
    protected const long Disk1Size = 32 * MiB;
    protected const string Disk0Description = "first test disk";

    private readonly List<string> _workDirs = [];

    protected async Task<DaemonProcess> StartTwoDisksAsync(bool tcp = false)
    {
        var daemon = await DaemonProcess.StartAsync(
            DaemonProcess.Disk("disk0", "64M", $"description = \"{Disk0Description}\"") + DaemonProcess.Disk("disk1", "32M"),
            tcp: tcp);
        _workDirs.Add(daemon.WorkDir);
        return daemon;
    }

    /// <summary>Removes a daemon's work folder with the others when the test passes.</summary>
    protected void CleanUpAfterPass(DaemonProcess daemon) => _workDirs.Add(daemon.WorkDir);

    [TearDown]
    public void RemoveWorkDirs()
    {
        if (TestContext.CurrentContext.Result.Outcome.Status == NUnit.Framework.Interfaces.TestStatus.Passed)
            foreach (string dir in _workDirs)
                try { Directory.Delete(dir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        _workDirs.Clear();
    }

    protected static string DiskFile(DaemonProcess daemon, string name) => Path.Combine(daemon.StateDir, "disks", name + ".img");
}
