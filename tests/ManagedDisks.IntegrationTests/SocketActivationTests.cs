namespace ManagedDisks.IntegrationTests;

/// <summary>systemd-style socket activation (LISTEN_FDS), driven by libnbd, which speaks it as systemd does.</summary>
[NonParallelizable]
public class SocketActivationTests
{
    [Test]
    public async Task ServesOnTheSocketItIsGivenInsteadOfItsListenList()
    {
        string work = DaemonProcess.NewWorkDir();
        string state = Path.Combine(work, "state");
        string config = Path.Combine(work, "disks.toml");
        await File.WriteAllTextAsync(config, DaemonProcess.Config(state, DaemonProcess.Disk("disk0", "16M")));

        // libnbd makes a listening socket, starts the daemon with it as fd 3 and LISTEN_PID/LISTEN_FDS set, then connects.
        string dll = Path.Combine(AppContext.BaseDirectory, "managed-disks.dll");
        string script = $"""
            h.set_export_name("disk0")
            h.connect_systemd_socket_activation(["dotnet", "{dll}", "serve", "--config", "{config}"])
            print("size", h.get_size())
            h.pwrite(b"\x42" * 4096, 0)
            assert h.pread(4096, 0) == b"\x42" * 4096
            print("io ok")
            """;
        var result = await Tool.RunAsync("nbdsh", ["-c", script], timeout: TimeSpan.FromMinutes(2));
        Assert.That(result.ExitCode, Is.Zero, result.ToString());
        Assert.That(result.StdOut, Does.Contain($"size {16L << 20}").And.Contain("io ok"));
        Assert.That(File.Exists(Path.Combine(state, "nbd.sock")), Is.False, "with socket activation the configured listen socket is not created");
    }
}
