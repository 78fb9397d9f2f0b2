using System.Text.Json;

namespace ManagedDisks.IntegrationTests;

/// <summary>The admin API through the real CLI: changes apply to the running daemon without a restart or a disconnect.</summary>
[NonParallelizable]
public class AdminApiTests
{
    private static readonly string Cli = Path.Combine(AppContext.BaseDirectory, "managed-disks.dll");

    private static async Task<(DaemonProcess Daemon, string Config)> StartAsync()
    {
        string work = DaemonProcess.NewWorkDir();
        string state = Path.Combine(work, "state");
        string config = Path.Combine(work, "disks.toml");
        await File.WriteAllTextAsync(config, DaemonProcess.Config(state, """
            [[key_store]]
            name = "vault1"

            [[encryption_set]]
            name = "des1"
            key_store = "vault1"
            key = "kek1"

            """ + DaemonProcess.Disk("disk0", "64M")));
        await CliOkAsync(config, "vault", "key", "create", "kek1", "--size", "2048");
        await CliOkAsync(config, "vault", "grant", "--key", "kek1", "--identity", "encryption-set:des1", "--ops", "wrapKey,unwrapKey");
        return (await DaemonProcess.StartAsync(["serve", "--config", config], work, state), config);
    }

    private static Task<ToolResult> CliAsync(string config, params string[] arguments) => Tool.RunAsync("dotnet", [Cli, .. arguments, "--config", config]);

    private static async Task<ToolResult> CliOkAsync(string config, params string[] arguments)
    {
        var result = await CliAsync(config, arguments);
        Assert.That(result.ExitCode, Is.Zero, $"managed-disks {string.Join(' ', arguments)}:\n{result}");
        return result;
    }

    [Test]
    public async Task AdminSocketIsPrivate()
    {
        var (d, _) = await StartAsync();
        await using var _ = d;
        Assert.That(File.GetUnixFileMode(Path.Combine(d.StateDir, "admin.sock")), Is.EqualTo(UnixFileMode.UserRead | UnixFileMode.UserWrite));
    }

    [Test]
    public async Task DiskCreatedAtRunTimeIsServedAtOnceAndAfterARestart()
    {
        var (d, config) = await StartAsync();
        await using (d)
        {
            var created = JsonDocument.Parse((await CliOkAsync(config, "disk", "create", "extra", "--size", "16M", "--encryption-set", "des1")).StdOut).RootElement;
            Assert.That(created.GetProperty("key").GetString(), Is.EqualTo("kek1"));
            await Tool.RunOkAsync("qemu-io", "-f", "raw", "-c", "write -P 0x2d 0 1M", "-c", "read -P 0x2d 0 1M", d.Uri("extra"));

            var duplicate = await CliAsync(config, "disk", "create", "extra", "--size", "16M");
            Assert.That((duplicate.ExitCode, duplicate.StdErr), Is.EqualTo((1, "managed-disks: a disk named 'extra' already exists\n")));
            var unknownSet = await CliAsync(config, "disk", "create", "other", "--size", "16M", "--encryption-set", "nope");
            Assert.That(unknownSet.StdErr, Does.Contain("no encryption set named 'nope'"));
            Assert.That(await d.StopAsync(), Is.Zero);
        }
        await using var again = await DaemonProcess.StartAsync(["serve", "--config", config], d.WorkDir, d.StateDir);
        await Tool.RunOkAsync("qemu-io", "-f", "raw", "-c", "read -P 0x2d 0 1M", again.Uri("extra"));
        Assert.That((await CliOkAsync(config, "disk", "list")).StdOut, Does.Contain("extra").And.Contain("set des1"));
    }

    [Test]
    public async Task DiskMovesToASetWhileFioVerifiesWithoutAnError()
    {
        var (d, config) = await StartAsync();
        await using (d)
        {
            // fio keeps writing and verifying across the move; a disconnect or an I/O error fails it.
            var fio = Tool.RunAsync("fio", ["--name=move", "--ioengine=nbd", $"--uri={d.Uri()}", "--rw=randwrite", "--bs=4k", "--size=32m",
                "--iodepth=16", "--verify=crc32c", "--verify_fatal=1", "--do_verify=1", "--loops=4"], workingDirectory: d.WorkDir);
            await d.WaitForLogAsync("attached export 'disk0'");
            var connections = JsonDocument.Parse((await CliOkAsync(config, "connections")).StdOut).RootElement;
            Assert.That(connections.EnumerateArray().Any(c => c.GetProperty("export").GetString() == "disk0"), Is.True);

            var moved = JsonDocument.Parse((await CliOkAsync(config, "disk", "move", "disk0", "--encryption-set", "des1")).StdOut).RootElement;
            Assert.That(moved.GetProperty("key_store").GetString(), Is.EqualTo("vault1"));
            Assert.That(fio.IsCompleted, Is.False, "the move must happen while fio runs; make the fio job longer if this fails");
            var result = await fio;
            Assert.That(result.ExitCode, Is.Zero, result.ToString());
            Assert.That(result.StdOut, Does.Contain("err= 0"));
            Assert.That(await d.StopAsync(), Is.Zero);
        }
        var show = JsonDocument.Parse((await CliOkAsync(config, "disk", "show", "disk0", "--json")).StdOut).RootElement;
        Assert.That(show.GetProperty("key_slots")[0].GetProperty("key_name").GetString(), Is.EqualTo("kek1"));

        // The move is kept: after a restart the disk is still in des1, not moved back by disks.toml.
        await using var again = await DaemonProcess.StartAsync(["serve", "--config", config], d.WorkDir, d.StateDir);
        Assert.That(again.Output, Does.Not.Contain("moved from key"));
        Assert.That((await CliOkAsync(config, "disk", "list")).StdOut, Does.Contain("set des1"));
    }

    [Test]
    public async Task CommandsSayWhenTheDaemonIsNotRunning()
    {
        var (d, config) = await StartAsync();
        await d.StopAsync();
        await d.DisposeAsync();
        var result = await CliAsync(config, "disk", "list");
        Assert.That(result.ExitCode, Is.EqualTo(1));
        Assert.That(result.StdErr, Does.Contain("the daemon is not running"));
    }

    [Test]
    public async Task StatusCountsTheBytesEachDiskMovedAndShowsKeysAndClients()
    {
        var (d, config) = await StartAsync();
        await using var _ = d;
        await Tool.RunOkAsync("qemu-io", "-f", "raw", "-c", "write -P 0x1 0 1M", "-c", "read -P 0x1 0 512k", d.Uri());
        var status = JsonDocument.Parse((await CliOkAsync(config, "status", "--json")).StdOut).RootElement;
        var disk = status.GetProperty("disks").EnumerateArray().Single(x => x.GetProperty("name").GetString() == "disk0");
        Assert.That(disk.GetProperty("bytes_written").GetInt64(), Is.EqualTo(1 << 20));
        Assert.That(disk.GetProperty("bytes_read").GetInt64(), Is.GreaterThanOrEqualTo(512 * 1024));
        Assert.That(status.GetProperty("keys")[0].GetProperty("granted_operations").GetString(), Does.Contain("UnwrapKey"));
        Assert.That((await CliOkAsync(config, "status")).StdOut, Does.Contain("disk0").And.Contain("1 MiB").And.Contain("client connection(s)"));
    }
}
