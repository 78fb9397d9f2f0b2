using System.Text.Json;

namespace ManagedDisks.IntegrationTests;

/// <summary>
/// The python scripts in scripts/ run inside nbdsh (libnbd's python shell) against a real
/// daemon with two disks. Each script asserts protocol behaviour and prints "OK name" last.
/// </summary>
[TestFixture]
public sealed class NbdshTests : TwoDiskTests
{
    /// <summary>Like <see cref="Tool.NbdshScriptAsync"/>, with extra environment for the script.</summary>
    private static async Task<ToolResult> RunScriptAsync(DaemonProcess daemon, string script, string uri,
        Dictionary<string, string>? environment = null)
    {
        string path = Path.Combine(AppContext.BaseDirectory, "scripts", script);
        Assert.That(File.Exists(path), Is.True, $"{path} was not copied to the test output");
        var env = new Dictionary<string, string>(environment ?? []) { ["URI"] = uri };
        var result = await Tool.RunAsync("nbdsh", ["-c", $"exec(open('{path}').read())"], env, TimeSpan.FromMinutes(2));
        TestContext.Out.WriteLine($"nbdsh {script} on {uri}: {result}");
        Assert.That(daemon.HasExited, Is.False, $"the daemon died during {script}\n{daemon.Output}");
        return result;
    }

    private static void AssertOk(ToolResult result, string name)
    {
        Assert.That(result.ExitCode, Is.Zero, $"nbdsh script failed:\n{result}");
        string last = result.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).LastOrDefault() ?? "";
        Assert.That(last, Is.EqualTo($"OK {name}"), $"the script did not finish:\n{result}");
    }

    /// <summary>Error-level log lines mean an exception escaped a request or a connection.</summary>
    private static void AssertNoServerErrors(DaemonProcess daemon)
    {
        var errors = daemon.Output.Split('\n').Where(l => l.Contains(" fail: ", StringComparison.Ordinal) || l.Contains(" crit: ", StringComparison.Ordinal)).ToList();
        Assert.That(errors, Is.Empty, "the daemon logged errors:\n" + string.Join('\n', errors));
    }


    /// <summary>A disk's header as <c>managed-disks disk show --json</c> prints it (payload offset, size, sector size).</summary>
    private static async Task<JsonElement> DiskShowAsync(DaemonProcess daemon, string name)
    {
        var result = await Tool.RunAsync("dotnet", [Path.Combine(AppContext.BaseDirectory, "managed-disks.dll"), "disk", "show", name,
            "--config", Path.Combine(daemon.WorkDir, "disks.toml"), "--json"]);
        Assert.That(result.ExitCode, Is.Zero, $"disk show {name}:\n{result}");
        return JsonDocument.Parse(result.StdOut).RootElement;
    }

    /// <summary>What nbdsh-basic.py needs to check the encrypted backing file of a disk.</summary>
    private static async Task<Dictionary<string, string>> BackingFileEnvironmentAsync(DaemonProcess daemon, string name, long size)
    {
        var show = await DiskShowAsync(daemon, name);
        Assert.That(show.GetProperty("size").GetInt64(), Is.EqualTo(size));
        Assert.That(show.GetProperty("sector_size").GetInt32(), Is.EqualTo(4096));
        Assert.That(show.GetProperty("cipher").GetString(), Is.EqualTo("aes-xts-plain64"));
        return new()
        {
            ["DISK_FILE"] = DiskFile(daemon, name),
            ["PAYLOAD_OFFSET"] = show.GetProperty("payload_offset").GetInt64().ToString(System.Globalization.CultureInfo.InvariantCulture),
        };
    }

    [Test]
    public async Task Basic_UnixSocket()
    {
        await using var d = await StartTwoDisksAsync();
        var result = await RunScriptAsync(d, "nbdsh-basic.py", d.Uri("disk0"), await BackingFileEnvironmentAsync(d, "disk0", Disk0Size));
        AssertOk(result, "basic");
        AssertNoServerErrors(d);
    }

    [Test]
    public async Task Basic_Tcp_SecondDisk()
    {
        await using var d = await StartTwoDisksAsync(tcp: true);
        Assert.That(d.TcpPort, Is.Not.Null, "no TCP port in the log");
        var result = await RunScriptAsync(d, "nbdsh-basic.py", d.TcpUri("disk1"), await BackingFileEnvironmentAsync(d, "disk1", Disk1Size));
        AssertOk(result, "basic");
        // disk0 was not touched by a script that worked on disk1: still its header and one hole
        long payloadOffset = (await DiskShowAsync(d, "disk0")).GetProperty("payload_offset").GetInt64();
        Assert.That(new FileInfo(DiskFile(d, "disk0")).Length, Is.EqualTo(payloadOffset + Disk0Size));
        var map = await Tool.RunOkAsync("nbdinfo", "--map", d.Uri("disk0"));
        Assert.That(map.StdOut.Trim(), Does.Match($@"^\s*0\s+{Disk0Size}\s+3\s+hole,zero$"), map.ToString());
        AssertNoServerErrors(d);
    }

    [Test]
    public async Task Negative_MalformedRequestsAreRefusedAndTheConnectionSurvives()
    {
        await using var d = await StartTwoDisksAsync();
        var result = await RunScriptAsync(d, "nbdsh-negative.py", d.Uri("disk0"));
        AssertOk(result, "negative");
        // the requests really reached the server (libnbd did not refuse them itself)
        Assert.That(d.Output, Does.Contain("rejected with"), "the daemon logged no rejected request");
        AssertNoServerErrors(d);
    }

    [TestCase(false)]
    [TestCase(true)]
    public async Task OptMode_ListInfoMetaContextGoAbort(bool tcp)
    {
        await using var d = await StartTwoDisksAsync(tcp);
        string exports = JsonSerializer.Serialize(new Dictionary<string, object>
        {
            ["disk0"] = new Dictionary<string, object> { ["size"] = Disk0Size, ["description"] = Disk0Description },
            ["disk1"] = new Dictionary<string, object> { ["size"] = Disk1Size, ["description"] = "" },
        });
        var result = await RunScriptAsync(d, "nbdsh-optmode.py", tcp ? d.TcpUri("disk1") : d.Uri("disk0"),
            new() { ["EXPORTS"] = exports });
        AssertOk(result, "optmode");
        AssertNoServerErrors(d);
    }

    [Test]
    public async Task MultiConn_FlushAndFuaAreVisibleOnEveryConnection()
    {
        await using var d = await StartTwoDisksAsync();
        var result = await RunScriptAsync(d, "nbdsh-multiconn.py", d.Uri("disk0"));
        AssertOk(result, "multiconn");
        AssertNoServerErrors(d);
    }

    [Test]
    public async Task LegacyPaths_SimpleRepliesAndExportName()
    {
        await using var d = await StartTwoDisksAsync();
        var result = await RunScriptAsync(d, "nbdsh-legacy-paths.py", d.Uri("disk0"));
        AssertOk(result, "legacy-paths");
        AssertNoServerErrors(d);
    }
}
