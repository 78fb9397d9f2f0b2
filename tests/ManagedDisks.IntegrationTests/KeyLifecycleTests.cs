using System.Diagnostics;
using System.Text;
using System.Text.Json;

namespace ManagedDisks.IntegrationTests;

/// <summary>
/// Revocation enforced on served disks, through the real daemon, vault CLI and NBD clients:
/// a key made unusable starts a grace period and runs the hook; at the deadline I/O fails, clients
/// are disconnected and attaches are refused with ERR_POLICY; a key usable again in time changes
/// nothing for clients; the clock survives a restart.
/// </summary>
[NonParallelizable]
public class KeyLifecycleTests
{
    private static readonly string IoClient = Path.Combine(AppContext.BaseDirectory, "scripts", "lifecycle", "io_until_stopped.py");

    private sealed record Setup(string WorkDir, string StateDir, string Config, string Identity);

    private static async Task<Setup> NewSetupAsync(string grace, int? metricsPort = null)
    {
        string work = DaemonProcess.NewWorkDir();
        string state = Path.Combine(work, "state");
        string config = Path.Combine(work, "disks.toml");
        string hook = Path.Combine(work, "hook.sh");
        await File.WriteAllTextAsync(hook, $"#!/bin/sh\necho \"$1 $2 $MANAGED_DISKS_DISK\" >> {work}/hook.log\n");
        File.SetUnixFileMode(hook, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        await File.WriteAllTextAsync(config, DaemonProcess.Config(state, $"""
            [timers]
            key_poll_interval = "1s"
            revoke_grace = "{grace}"

            """ + ManagedDisksCli.VaultAndSet() + DaemonProcess.Disk("disk1", "16M", "encryption_set = \"des1\""), daemonExtra: $"on_key_revoked = [\"{hook}\"]" +
            (metricsPort is { } port ? $"\n[metrics]\nlisten = \"http://127.0.0.1:{port}/metrics\"\n" : "")));
        var s = new Setup(work, state, config, "");
        await CliOkAsync(s, "vault", "--store", "vault1", "key", "create", "kek1");
        string identity = JsonDocument.Parse((await CliOkAsync(s, "set", "show", "des1", "--json")).StdOut).RootElement.GetProperty("identity").GetString()!;
        s = s with { Identity = identity };
        await GrantAsync(s);
        return s;
    }

    private static Task GrantAsync(Setup s) =>
        CliOkAsync(s, "vault", "--store", "vault1", "grant", "--key", "kek1", "--identity", s.Identity, "--ops", "wrapKey,unwrapKey");

    private static Task<ToolResult> CliOkAsync(Setup s, params string[] arguments) => new ManagedDisksCli(s.Config).OkAsync(arguments);

    private static Task<DaemonProcess> StartAsync(Setup s) => DaemonProcess.StartAsync(["serve", "--config", s.Config], s.WorkDir, s.StateDir);

    private static async Task<JsonElement> DiskStatusAsync(Setup s)
    {
        var status = JsonDocument.Parse((await CliOkAsync(s, "status", "--json")).StdOut).RootElement;
        return status.GetProperty("disks").EnumerateArray().Single(d => d.GetProperty("name").GetString() == "disk1");
    }

    /// <summary>Asks for disk1 with NBD_OPT_GO; asserts NBD_REP_ERR_POLICY and returns the server's message.</summary>
    private static async Task<string> PolicyRefusalAsync(DaemonProcess daemon)
    {
        await using var raw = await RawNbdClient.NegotiatingAsync(daemon.SocketPath);
        await raw.SendOptionAsync(7, RawNbdClient.GoData("disk1"));
        var reply = await raw.ReadOptionReplyAsync();
        Assert.That(reply.Type, Is.EqualTo(0x80000002u), "NBD_REP_ERR_POLICY");
        return Encoding.UTF8.GetString(reply.Data);
    }

    /// <summary>Polls the status until the disk reaches <paramref name="state"/> (the daemon acts within a second or a poll).</summary>
    private static async Task WaitForStateAsync(Setup s, string state)
    {
        var until = DateTime.UtcNow.AddSeconds(30);
        string last = "";
        while (DateTime.UtcNow < until)
        {
            last = (await DiskStatusAsync(s)).GetProperty("state").GetString()!;
            if (last == state) return;
            await Task.Delay(200);
        }
        Assert.Fail($"disk1 stayed {last}, never {state}");
    }

    /// <summary>A client doing verified I/O on one connection until told to stop or failed.</summary>
    private sealed class BusyClient(Process process, string stopFile) : IAsyncDisposable
    {
        public static async Task<BusyClient> StartAsync(DaemonProcess daemon, Setup s)
        {
            string stop = Path.Combine(s.WorkDir, $"stop-{Guid.NewGuid():N}");
            var info = new ProcessStartInfo("/usr/bin/python3") { RedirectStandardOutput = true, RedirectStandardError = true };
            info.ArgumentList.Add(IoClient);
            info.ArgumentList.Add(daemon.Uri("disk1"));
            info.ArgumentList.Add(stop);
            var process = Process.Start(info)!;
            string? first = await process.StandardOutput.ReadLineAsync();
            if (first != "connected") Assert.Fail($"the client did not connect: {first}{await process.StandardError.ReadToEndAsync()}");
            return new BusyClient(process, stop);
        }

        /// <summary>What the client printed last: "ok N" or "error N errno=...".</summary>
        public async Task<string> FinishAsync(bool stop)
        {
            if (stop) await File.WriteAllTextAsync(stopFile, "");
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            string output = await process.StandardOutput.ReadToEndAsync(timeout.Token);
            await process.WaitForExitAsync(timeout.Token);
            if (process.ExitCode != 0) Assert.Fail($"the client read back wrong data: {output}{await process.StandardError.ReadToEndAsync()}");
            return output.Trim();
        }

        public ValueTask DisposeAsync()
        {
            if (!process.HasExited) process.Kill();
            process.Dispose();
            return ValueTask.CompletedTask;
        }
    }

    [Test]
    public async Task RevokedKeyShutsTheDiskDownAtTheDeadlineAndEnablingItBringsTheDiskBack()
    {
        var s = await NewSetupAsync("6s");
        await using var daemon = await StartAsync(s);
        await Tool.RunOkAsync("qemu-io", "-f", "raw", "-c", "write -P 0x6b 1M 64k", daemon.Uri("disk1"));
        await using var client = await BusyClient.StartAsync(daemon, s);

        await CliOkAsync(s, "vault", "--store", "vault1", "key", "disable", "kek1");
        var started = await daemon.WaitForLogAsync(@"Disk disk1: its key is not usable .*; it is served until (\S+ \S+), then shut down");
        var grace = await DiskStatusAsync(s);
        Assert.That(grace.GetProperty("state").GetString(), Is.EqualTo("grace"));
        Assert.That(grace.GetProperty("key_state").GetString(), Is.EqualTo("revoked"));
        Assert.That(grace.GetProperty("reason").GetString(), Does.Contain("key 'kek1' in 'vault1' is disabled"));
        var deadline = grace.GetProperty("deadline").GetDateTimeOffset();
        Assert.That(deadline.ToString("u"), Is.EqualTo(started.Groups[1].Value));

        await daemon.WaitForLogAsync("Disk disk1 shut down");
        string outcome = await client.FinishAsync(stop: false);
        Assert.That(outcome, Does.Match(@"^error [1-9]\d* errno=(EIO|ESHUTDOWN)"), "the busy client kept working until the deadline, then failed");
        Assert.That(DateTimeOffset.UtcNow, Is.GreaterThanOrEqualTo(deadline));

        // The hook ran at the start of the grace period with the disk and its deadline.
        string hookLog = await File.ReadAllTextAsync(Path.Combine(s.WorkDir, "hook.log"));
        Assert.That(hookLog.Trim(), Is.EqualTo($"disk1 {deadline.UtcDateTime:yyyy-MM-ddTHH:mm:ssZ} disk1"));

        // A new attach is refused by policy, and the client is told which key.
        Assert.That(await PolicyRefusalAsync(daemon), Does.Contain("key 'kek1' in 'vault1' is disabled"));
        var down = await DiskStatusAsync(s);
        Assert.That(down.GetProperty("state").GetString(), Is.EqualTo("shut-down"));

        await CliOkAsync(s, "vault", "--store", "vault1", "key", "enable", "kek1");
        await daemon.WaitForLogAsync("Disk disk1: its key is usable again; the disk is served again");
        await Tool.RunOkAsync("qemu-io", "-f", "raw", "-c", "read -P 0x6b 1M 64k", daemon.Uri("disk1"));
        Assert.That((await DiskStatusAsync(s)).GetProperty("state").GetString(), Is.EqualTo("serving"));

        string audit = (await CliOkAsync(s, "audit")).StdOut;
        Assert.That(audit, Does.Contain("key-lifecycle").And.Contain("grace-started").And.Contain("shutdown").And.Contain("restored"));
        await CliOkAsync(s, "audit", "verify");
    }

    [Test]
    public async Task AGrantRestoredBeforeTheDeadlineChangesNothingForClients()
    {
        int port = MetricsTests.FreePort();
        var s = await NewSetupAsync("1h", port);
        await using var daemon = await StartAsync(s);
        await using var client = await BusyClient.StartAsync(daemon, s);

        await CliOkAsync(s, "vault", "--store", "vault1", "revoke", "--key", "kek1", "--identity", s.Identity);
        await daemon.WaitForLogAsync(@"Disk disk1: its key is not usable .*may not unwrapKey");
        using (var http = new HttpClient())
        {
            string metrics = await http.GetStringAsync($"http://127.0.0.1:{port}/metrics");
            Assert.That(MetricsTests.Sample(metrics, "manageddisks_lifecycle_grace_seconds_left", "disk=\"disk1\",kind=\"revoked\""), Is.InRange(1.0, 3600.0));
            Assert.That(MetricsTests.Sample(metrics, "manageddisks_lifecycle_disks", "state=\"grace\""), Is.EqualTo(1));
        }
        await GrantAsync(s);
        await daemon.WaitForLogAsync("Disk disk1: its key is usable again; the grace period is over and nothing changes");

        Assert.That(await client.FinishAsync(stop: true), Does.Match(@"^ok [1-9]\d*$"));
        Assert.That((await DiskStatusAsync(s)).GetProperty("state").GetString(), Is.EqualTo("serving"));
        Assert.That((await CliOkAsync(s, "audit")).StdOut, Does.Contain("grace-cancelled"));
    }

    [Test]
    public async Task ARestartKeepsTheDeadlineAndAnExpiredDiskStaysShutDown()
    {
        var s = await NewSetupAsync("1h");
        DateTimeOffset deadline;
        await using (var daemon = await StartAsync(s))
        {
            await CliOkAsync(s, "vault", "--store", "vault1", "key", "disable", "kek1");
            await daemon.WaitForLogAsync("Disk disk1: its key is not usable");
            deadline = (await DiskStatusAsync(s)).GetProperty("deadline").GetDateTimeOffset();
        }
        await using (var daemon = await StartAsync(s))
        {
            // The key is still disabled: the disk cannot even be opened, but its clock has not moved.
            var status = await DiskStatusAsync(s);
            Assert.That(status.GetProperty("deadline").GetDateTimeOffset(), Is.EqualTo(deadline));
            Assert.That(status.GetProperty("state").GetString(), Is.EqualTo("waiting-for-key"));
            Assert.That(await PolicyRefusalAsync(daemon), Does.Contain("key 'kek1' in 'vault1' is disabled"));
            Assert.That((await Tool.RunAsync("nbdinfo", [daemon.Uri("disk1")])).ExitCode, Is.Not.Zero);
        }

        // Past the deadline while the daemon was down: after a restart it stays shut down.
        string timers = Path.Combine(s.StateDir, "grace-timers.json");
        var document = System.Text.Json.Nodes.JsonNode.Parse(await File.ReadAllTextAsync(timers))!;
        document[0]!["deadline"] = DateTimeOffset.UtcNow.AddMinutes(-1).ToString("O");
        await File.WriteAllTextAsync(timers, document.ToJsonString());
        await using (var daemon = await StartAsync(s))
        {
            await WaitForStateAsync(s, "shut-down");
            Assert.That(await PolicyRefusalAsync(daemon), Does.Contain("shut down at").And.Contain("key 'kek1' in 'vault1' is disabled"));
            await CliOkAsync(s, "vault", "--store", "vault1", "key", "enable", "kek1");
            await daemon.WaitForLogAsync("Disk disk1: its key is usable again; the disk is served again");
            await Tool.RunOkAsync("nbdinfo", [daemon.Uri("disk1")]);
        }
    }

    [Test]
    public async Task DetachWipesTheDiskFromServiceAndAttachBringsItBack()
    {
        var s = await NewSetupAsync("1h");
        await using var daemon = await StartAsync(s);
        await Tool.RunOkAsync("qemu-io", "-f", "raw", "-c", "write -P 0x3c 2M 64k", daemon.Uri("disk1"));
        await using var client = await BusyClient.StartAsync(daemon, s);

        await CliOkAsync(s, "disk", "detach", "disk1");
        Assert.That(await client.FinishAsync(stop: false), Does.Match(@"^error \d+ errno=(EIO|ESHUTDOWN)"));
        Assert.That((await DiskStatusAsync(s)).GetProperty("state").GetString(), Is.EqualTo("detached"));
        Assert.That(await PolicyRefusalAsync(daemon), Does.Contain("disk 'disk1' is detached; attach it with `managed-disks disk attach disk1`"));

        await CliOkAsync(s, "disk", "attach", "disk1");
        await Tool.RunOkAsync("qemu-io", "-f", "raw", "-c", "read -P 0x3c 2M 64k", daemon.Uri("disk1"));
    }
}
