using System.Text.Json;

namespace ManagedDisks.IntegrationTests;

/// <summary>
/// <c>managed-disks config show</c> and start-up validation as an administrator meets them: the
/// real executable, a real disks.toml with relative paths, no daemon left running.
/// </summary>
public class ConfigCliTests
{
    private static readonly string Cli = Path.Combine(AppContext.BaseDirectory, "managed-disks.dll");
    private string _work = null!;

    [SetUp]
    public void SetUp() => _work = DaemonProcess.NewWorkDir();

    [TearDown]
    public void TearDown()
    {
        try { Directory.Delete(_work, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    private string WriteConfig(string text)
    {
        string path = Path.Combine(_work, "disks.toml");
        File.WriteAllText(path, text);
        return path;
    }

    // Run from another folder with a relative --config: relative paths are under the file's folder, not the working directory.
    private Task<ToolResult> CliAsync(params string[] arguments) =>
        Tool.RunAsync("dotnet", [Cli, .. arguments], workingDirectory: Path.GetDirectoryName(_work), timeout: TimeSpan.FromMinutes(1));

    private string RelativeConfig => Path.Combine(Path.GetFileName(_work), "disks.toml");

    [Test]
    public async Task ConfigShowPrintsEveryDefaultWithAbsolutePaths()
    {
        WriteConfig("""
            [daemon]
            state_dir = "state"
            platform_key_secret = "secrets/platform-key"

            [[disk]]
            name = "d1"
            size = "1G"
            """);
        string state = Path.Combine(_work, "state");

        var toml = await CliAsync("config", "show", "--config", RelativeConfig);
        Assert.That(toml.ExitCode, Is.Zero, toml.ToString());
        Assert.That(toml.StdOut, Does.Contain($"state_dir = \"{state}\""));
        Assert.That(toml.StdOut, Does.Contain($"listen = [\"unix:{state}/nbd.sock\"]"));
        Assert.That(toml.StdOut, Does.Contain("max_connections = 512"));
        Assert.That(toml.StdOut, Does.Contain("handshake_timeout = \"10s\""));
        Assert.That(toml.StdOut, Does.Contain($"platform_key_secret = \"{state}/secrets/platform-key\""), "a path to a secret stays visible");
        Assert.That(toml.StdOut, Does.Contain($"path = \"{state}/disks/d1.img\""));
        Assert.That(toml.StdOut, Does.Contain("sector_size = 4096"));
        Assert.That(toml.StdOut, Does.Contain("# encryption_set is not set"));

        var json = await CliAsync("config", "show", "--config", RelativeConfig, "--json");
        Assert.That(json.ExitCode, Is.Zero, json.ToString());
        var root = JsonDocument.Parse(json.StdOut).RootElement;
        var daemon = root.GetProperty("daemon");
        Assert.That(daemon.GetProperty("state_dir").GetString(), Is.EqualTo(state));
        Assert.That(daemon.GetProperty("admin_socket").GetString(), Is.EqualTo(Path.Combine(state, "admin.sock")));
        Assert.That(daemon.GetProperty("connection_inflight_bytes").GetInt64(), Is.EqualTo(64L << 20));
        var disk = root.GetProperty("disk").EnumerateArray().Single();
        Assert.That(disk.GetProperty("size").GetInt64(), Is.EqualTo(1L << 30));
        Assert.That(disk.GetProperty("read_only").GetBoolean(), Is.False);
        Assert.That(disk.GetProperty("encryption_set").ValueKind, Is.EqualTo(JsonValueKind.Null));
        Assert.That(root.GetProperty("key_store").GetArrayLength(), Is.Zero);
        foreach (string path in new[] { daemon.GetProperty("state_dir").GetString()!, daemon.GetProperty("platform_key_secret").GetString()!, disk.GetProperty("path").GetString()! })
            Assert.That(Path.IsPathFullyQualified(path), Is.True, path);

        // The printed TOML is itself a valid disks.toml describing the same configuration.
        File.WriteAllText(Path.Combine(_work, "effective.toml"), toml.StdOut);
        var again = await CliAsync("config", "show", "--config", Path.Combine(_work, "effective.toml"), "--json");
        Assert.That(again.ExitCode, Is.Zero, again.ToString());
        Assert.That(again.StdOut, Is.EqualTo(json.StdOut));
        Assert.That(Directory.Exists(state), Is.False, "config show only reads");
    }

    [Test]
    public async Task ServeWithAMistypedKeyExits2NamingTheLineAndTheFix()
    {
        string config = WriteConfig("""
            [daemon]
            state_dir = "state"
            max_conections = 10

            [[disk]]
            name = "d1"
            size = "1G"
            read_only = "no"
            """);

        var serve = await CliAsync("serve", "--config", config);
        Assert.That(serve.ExitCode, Is.EqualTo(2), serve.ToString());
        Assert.That(serve.StdErr, Does.Contain($"{config} has 2 problems:"));
        Assert.That(serve.StdErr, Does.Contain($"{config}:3: [daemon] unknown key 'max_conections'; did you mean 'max_connections'?"));
        Assert.That(serve.StdErr, Does.Contain($"{config}:8: [[disk]] 'd1': read_only must be true or false, not the string \"no\""));
        Assert.That(Directory.Exists(Path.Combine(_work, "state")), Is.False, "nothing is created from a configuration with problems");

        var show = await CliAsync("config", "show", "--config", config);
        Assert.That(show.ExitCode, Is.EqualTo(2), show.ToString());
        Assert.That(show.StdErr, Does.Contain($"{config}:3: [daemon] unknown key 'max_conections'"));
        Assert.That(show.StdOut, Is.Empty);
    }

    [Test]
    public async Task ATomlSyntaxErrorNamesItsLineAndColumn()
    {
        string config = WriteConfig("[daemon]\nstate_dir = \"state\"\n\n[[disk]\nname = \"d1\"\n");

        var show = await CliAsync("config", "show", "--config", config);
        Assert.That(show.ExitCode, Is.EqualTo(2), show.ToString());
        Assert.That(show.StdErr, Does.Match($@"{System.Text.RegularExpressions.Regex.Escape(config)}:4:\d+: "));
    }
}
