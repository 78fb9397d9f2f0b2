using System.Diagnostics;
using System.Text;
using System.Text.RegularExpressions;

namespace ManagedDisks.IntegrationTests;

/// <summary>
/// packaging/: the systemd unit (systemd-analyze verify and security), the tmpfiles.d entry,
/// the packaged disks.toml, and the .deb that packaging/build-deb.sh builds, inspected with
/// dpkg-deb and run from its extracted tree. Installing it with dpkg -i is left out of the
/// suite (it changes the machine: a system user, /etc, /var/lib); packaging/README.md records
/// that run. A missing tool skips its test.
/// </summary>
[NonParallelizable]
public class PackagingTests
{
    private const string UnitName = "managed-disks.service";
    private const string PackagedExecStart = "/usr/bin/managed-disks serve --config /etc/managed-disks/disks.toml";

    private static readonly Lazy<string> LazyRepoRoot = new(FindRepoRoot);
    private static Task<string>? _package;
    private static string? _packageDir;
    private string _work = null!;

    private static string RepoRoot => LazyRepoRoot.Value;
    private static string Packaging => Path.Combine(RepoRoot, "packaging");
    private static string UnitFile => Path.Combine(Packaging, UnitName);

    [SetUp]
    public void SetUp() => _work = DaemonProcess.NewWorkDir();

    [TearDown]
    public void TearDown()
    {
        try { Directory.Delete(_work, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    [OneTimeTearDown]
    public static void DeletePackage()
    {
        if (_packageDir is null) return;
        try { Directory.Delete(_packageDir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    private static string FindRepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "ManagedDisks.sln"))) return dir.FullName;
        throw new InvalidOperationException($"no ManagedDisks.sln above {AppContext.BaseDirectory}");
    }

    // ---- the unit ----

    /// <summary>
    /// The unit as shipped, its ExecStart pointed at an executable that exists here (the
    /// package is not installed): systemd-analyze verify must have nothing at all to say.
    /// </summary>
    [Test]
    public async Task UnitPassesSystemdAnalyzeVerify()
    {
        Tool.Require("systemd-analyze");
        string executable = Path.Combine(AppContext.BaseDirectory, "managed-disks");
        if (!File.Exists(executable)) executable = "/bin/true";
        string unit = WriteUnitCopy(_work, executable);

        var result = await RunAsync("/usr/bin/systemd-analyze", ["verify", unit]);

        Assert.That(result.ExitCode, Is.Zero, result.ToString());
        Assert.That(result.StdOut + result.StdErr, Is.Empty, "systemd-analyze verify warns about the unit");
    }

    /// <summary>The shipped file itself: its only possible complaint is the binary the package installs.</summary>
    [Test]
    public async Task ShippedUnitOnlyMissesTheInstalledBinary()
    {
        Tool.Require("systemd-analyze");
        var result = await RunAsync("/usr/bin/systemd-analyze", ["verify", UnitFile]);
        bool installed = File.Exists("/usr/bin/managed-disks");
        var complaints = Lines(result.StdOut + result.StdErr)
            .Where(line => installed || !line.Contains("/usr/bin/managed-disks is not executable", StringComparison.Ordinal))
            .ToList();
        Assert.That(complaints, Is.Empty, result.ToString());
    }

    [Test]
    public void UnitRunsServeAsNotifyServiceWithHardening()
    {
        var service = Directives(File.ReadAllText(UnitFile));
        string Single(string key) => service.TryGetValue(key, out var values)
            ? values.Last()
            : throw new AssertionException($"{UnitName} does not set {key}=");

        Assert.Multiple(() =>
        {
            Assert.That(Single("Type"), Is.EqualTo("notify"));
            Assert.That(Single("ExecStart"), Is.EqualTo(PackagedExecStart));
            Assert.That(Single("User"), Is.EqualTo("managed-disks"));
            Assert.That(Single("Group"), Is.EqualTo("managed-disks"));
            Assert.That(Single("StateDirectory"), Is.EqualTo("managed-disks"));
            Assert.That(Single("StateDirectoryMode"), Is.EqualTo("0700"));
            Assert.That(Single("RuntimeDirectory"), Is.EqualTo("managed-disks"));
            Assert.That(Single("ConfigurationDirectory"), Is.EqualTo("managed-disks"));
            Assert.That(Single("ProtectSystem"), Is.EqualTo("strict"));
            Assert.That(Single("CapabilityBoundingSet"), Is.Empty, "no capability: LimitMEMLOCK covers mlock");
            Assert.That(Single("AmbientCapabilities"), Is.Empty);
            Assert.That(Single("LimitMEMLOCK"), Is.EqualTo("64M"));
            Assert.That(Single("RestrictAddressFamilies"), Is.EqualTo("AF_UNIX AF_INET AF_INET6"));
            Assert.That(Single("Restart"), Is.EqualTo("on-failure"));
            foreach (string yes in new[] { "NoNewPrivileges", "PrivateTmp", "ProtectHome", "LockPersonality", "ProtectKernelModules", "ProtectKernelTunables" })
                Assert.That(Single(yes), Is.EqualTo("yes"), yes);
            Assert.That(Single("SystemCallArchitectures"), Is.EqualTo("native"));
            Assert.That(service.ContainsKey("LimitNOFILE") && service.ContainsKey("TimeoutStopSec"));
            // The .NET JIT maps the code it writes executable; Hosting.Systemd reads /proc/PPID/comm.
            Assert.That(service.Keys, Has.No.Member("MemoryDenyWriteExecute"));
            Assert.That(service.Keys, Has.No.Member("ProtectProc"));
            Assert.That(service["LoadCredential"], Is.EquivalentTo(new[] { "platform-key-secret:/etc/credstore/managed-disks/platform-key-secret" }));
        });
        string text = File.ReadAllText(UnitFile);
        Assert.That(text, Does.Contain("#LoadCredential=vault-master-key:"));
        Assert.That(text, Does.Contain("#LoadCredential=hsm-pin:"));
    }

    /// <summary>systemd's own exposure score (0 = locked down, 10 = unprotected): below 3.0.</summary>
    [Test]
    public async Task UnitExposureIsLow()
    {
        Tool.Require("systemd-analyze");
        var result = await RunAsync("/usr/bin/systemd-analyze", ["security", "--offline=true", "--no-pager", "--threshold=30", UnitFile]);
        if (result.StdErr.Contains("unrecognized option", StringComparison.Ordinal))
            Assert.Ignore("systemd-analyze security --offline needs systemd 250 or later");
        Assert.That(result.ExitCode, Is.Zero, result.ToString());
        Assert.That(result.StdOut, Does.Match(@"Overall exposure level for managed-disks\.service: [0-2]\.\d OK"));
    }

    // ---- tmpfiles.d and the packaged configuration ----

    [Test]
    public async Task TmpfilesEntryCreatesStateAndCredentialFolders()
    {
        Tool.Require("systemd-tmpfiles");
        if (Environment.UserName != "root") Assert.Ignore("systemd-tmpfiles needs root to chown");
        string root = Path.Combine(_work, "root");
        Directory.CreateDirectory(Path.Combine(root, "etc"));
        File.WriteAllText(Path.Combine(root, "etc/passwd"), "root:x:0:0::/root:/bin/sh\nmanaged-disks:x:4711:4712::/var/lib/managed-disks:/usr/sbin/nologin\n");
        File.WriteAllText(Path.Combine(root, "etc/group"), "root:x:0:\nmanaged-disks:x:4712:\n");

        var result = await RunAsync("/usr/bin/systemd-tmpfiles", ["--root=" + root, "--create", Path.Combine(Packaging, "managed-disks.tmpfiles")]);

        Assert.That(result.ExitCode, Is.Zero, result.ToString());
        var state = await RunAsync("/usr/bin/stat", ["-c", "%a %u:%g", Path.Combine(root, "var/lib/managed-disks"),
            Path.Combine(root, "etc/credstore/managed-disks")]);
        Assert.That(Lines(state.StdOut), Is.EqualTo(new[] { "700 4711:4712", "700 0:0" }), state.ToString());
        Assert.That(Directory.Exists(Path.Combine(root, "run/managed-disks")), Is.False, "RuntimeDirectory= makes /run/managed-disks");
    }

    [Test]
    public async Task PackagedConfigLoadsWithTheUnitsCredentials()
    {
        string credentials = Path.Combine(_work, "credentials");
        Directory.CreateDirectory(credentials);
        File.WriteAllText(Path.Combine(credentials, "platform-key-secret"), "test-secret\n");
        string config = Path.Combine(Packaging, "disks.toml");
        string cli = Path.Combine(AppContext.BaseDirectory, "managed-disks.dll");

        var shown = await RunAsync("/usr/bin/dotnet", [cli, "config", "show", "--config", config],
            new Dictionary<string, string?> { ["CREDENTIALS_DIRECTORY"] = credentials });
        Assert.That(shown.ExitCode, Is.Zero, shown.ToString());
        Assert.That(shown.StdOut, Does.Contain("/var/lib/managed-disks"));
        Assert.That(shown.StdOut, Does.Contain("unix:/run/managed-disks/nbd.sock"));
        Assert.That(shown.StdOut, Does.Contain("tcp:127.0.0.1:10809"));
        Assert.That(shown.StdOut, Does.Contain("/run/managed-disks/admin.sock"));

        // Outside systemd, without the variable: the error names the unit's LoadCredential= line.
        var bare = await RunAsync("/usr/bin/dotnet", [cli, "config", "show", "--config", config],
            new Dictionary<string, string?> { ["CREDENTIALS_DIRECTORY"] = null });
        Assert.That(bare.ExitCode, Is.EqualTo(2), bare.ToString());
        Assert.That(bare.StdErr, Does.Contain("LoadCredential=platform-key-secret"));
    }

    // ---- the .deb ----

    [Test]
    public async Task PackageDeclaresItselfAndItsConffile()
    {
        string deb = await PackageAsync();
        var info = await RunOkAsync("/usr/bin/dpkg-deb", "--info", deb);
        Assert.That(info.StdOut, Does.Contain("Package: managed-disks"));
        Assert.That(info.StdOut, Does.Match(@"Version: \d"));
        Assert.That(info.StdOut, Does.Contain("Architecture: amd64"));
        Assert.That(info.StdOut, Does.Match(@"Depends: .*adduser"));
        Assert.That(info.StdOut, Does.Contain("Maintainer: "));
        foreach (string control in new[] { "conffiles", "postinst", "prerm", "postrm" })
            Assert.That(info.StdOut, Does.Contain(control), control);

        var conffiles = await RunOkAsync("/usr/bin/dpkg-deb", "--info", deb, "conffiles");
        Assert.That(Lines(conffiles.StdOut), Is.EqualTo(new[] { "/etc/managed-disks/disks.toml" }));

        var postinst = await RunOkAsync("/usr/bin/dpkg-deb", "--info", deb, "postinst");
        Assert.That(postinst.StdOut, Does.Contain("adduser --system --group --home /var/lib/managed-disks managed-disks"));
        // Removing or purging keeps the disks and keys.
        var postrm = await RunOkAsync("/usr/bin/dpkg-deb", "--info", deb, "postrm");
        Assert.That(Lines(postrm.StdOut).Where(l => !l.TrimStart().StartsWith('#')), Has.None.Match(@"rm\s+-\w*r|/var/lib/managed-disks\b.*rm|deluser|userdel"));
    }

    [Test]
    public async Task PackageHoldsTheDaemonUnitTmpfilesAndConfig()
    {
        string deb = await PackageAsync();
        var contents = await RunOkAsync("/usr/bin/dpkg-deb", "--contents", deb);
        var paths = Lines(contents.StdOut).Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries)).ToDictionary(f => f[5], f => f[0]);
        Assert.Multiple(() =>
        {
            Assert.That(paths.GetValueOrDefault("./usr/bin/managed-disks"), Is.EqualTo("-rwxr-xr-x"));
            Assert.That(paths.GetValueOrDefault("./usr/lib/managed-disks/managed-disks"), Is.EqualTo("-rwxr-xr-x"));
            // Self-contained: the runtime travels with the daemon.
            Assert.That(paths.Keys, Has.Member("./usr/lib/managed-disks/libcoreclr.so"));
            Assert.That(paths.Keys, Has.Member("./usr/lib/managed-disks/managed-disks.dll"));
            Assert.That(paths.GetValueOrDefault("./lib/systemd/system/managed-disks.service"), Is.EqualTo("-rw-r--r--"));
            Assert.That(paths.GetValueOrDefault("./usr/lib/tmpfiles.d/managed-disks.conf"), Is.EqualTo("-rw-r--r--"));
            Assert.That(paths.GetValueOrDefault("./etc/managed-disks/disks.toml"), Is.EqualTo("-rw-r--r--"));
            Assert.That(paths.Keys, Has.Member("./usr/share/doc/managed-disks/copyright"));
            Assert.That(paths.Keys, Has.None.Match(@"^\./var/"), "state is made at install and run time, never shipped");
        });
        Assert.That(Lines(contents.StdOut), Has.All.Contain(" root/root "), "--root-owner-group");
    }

    /// <summary>
    /// The extracted package: its unit verifies with ExecStart on the packaged wrapper, and the
    /// packaged daemon serves a disk from a config shaped like the shipped one (the platform
    /// key's passphrase read as a credential), which nbdinfo reads.
    /// </summary>
    [Test]
    public async Task ExtractedPackageVerifiesAndServes()
    {
        Tool.Require("nbdinfo");
        string deb = await PackageAsync();
        string tree = Path.Combine(_work, "tree");
        await RunOkAsync("/usr/bin/dpkg-deb", "-x", deb, tree);

        Assert.That(File.ReadAllText(Path.Combine(tree, "lib/systemd/system", UnitName)), Is.EqualTo(File.ReadAllText(UnitFile)));
        Assert.That(File.ReadAllText(Path.Combine(tree, "etc/managed-disks/disks.toml")), Is.EqualTo(File.ReadAllText(Path.Combine(Packaging, "disks.toml"))));
        string wrapper = File.ReadAllText(Path.Combine(tree, "usr/bin/managed-disks"));
        Assert.That(wrapper, Does.Contain("exec /usr/lib/managed-disks/managed-disks \"$@\""));

        if (Tool.Find("systemd-analyze") is not null)
        {
            string unit = WriteUnitCopy(Path.Combine(_work, "unit"), Path.Combine(tree, "usr/bin/managed-disks"));
            var verify = await RunAsync("/usr/bin/systemd-analyze", ["verify", unit]);
            Assert.That(verify.ExitCode, Is.Zero, verify.ToString());
            Assert.That(verify.StdOut + verify.StdErr, Is.Empty);
        }

        string daemon = Path.Combine(tree, "usr/lib/managed-disks/managed-disks");
        var version = await RunAsync(daemon, ["--version"], CleanEnvironment());
        Assert.That(version.ExitCode, Is.Zero, version.ToString());

        string state = Path.Combine(_work, "state");
        string credentials = Path.Combine(_work, "credentials");
        Directory.CreateDirectory(credentials);
        File.WriteAllText(Path.Combine(credentials, "platform-key-secret"), "packaged-test-secret\n");
        string config = Path.Combine(_work, "disks.toml");
        File.WriteAllText(config, $"""
            [daemon]
            state_dir = "{state}"
            listen = ["unix:{_work}/nbd.sock"]
            admin_socket = "{_work}/admin.sock"
            platform_key_secret = "credential:platform-key-secret"

            [[disk]]
            name = "disk0"
            size = "64M"
            """);

        await using var served = await PackagedDaemon.StartAsync(daemon, config, _work, credentials);
        var info = await RunAsync("/usr/bin/nbdinfo", ["--size", $"nbd+unix:///disk0?socket={_work}/nbd.sock"]);
        Assert.That(info.ExitCode, Is.Zero, info + "\n--- daemon ---\n" + served.Output);
        Assert.That(info.StdOut.Trim(), Is.EqualTo((64L << 20).ToString()));
        Assert.That(await served.StopAsync(), Is.Zero, served.Output);
        Assert.That(File.Exists(Path.Combine(state, "disks/disk0.img")));
    }

    // ---- helpers ----

    /// <summary>Builds the .deb once for the fixture (gzip: the compression does not matter here, time does).</summary>
    private static Task<string> PackageAsync()
    {
        Tool.Require("dpkg-deb");
        Tool.Require("dotnet");
        return _package ??= BuildPackageAsync();
    }

    private static async Task<string> BuildPackageAsync()
    {
        _packageDir = Path.Combine(Path.GetTempPath(), "md-deb-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(_packageDir);
        var environment = CleanEnvironment();
        environment["DEB_COMPRESSION"] = "gzip";
        var result = await RunAsync("/bin/bash", [Path.Combine(Packaging, "build-deb.sh"), _packageDir], environment, TimeSpan.FromMinutes(10));
        if (result.ExitCode != 0 && Regex.IsMatch(result.StdOut + result.StdErr, "NU1301|NU1101|NU1102"))
            Assert.Ignore("the linux-x64 runtime packs could not be restored (no NuGet access):\n" + result);
        Assert.That(result.ExitCode, Is.Zero, "build-deb.sh failed:\n" + result);
        string deb = Lines(result.StdOut).Last();
        Assert.That(deb, Does.EndWith("_amd64.deb").And.StartWith(_packageDir));
        Assert.That(File.Exists(deb), deb);
        return deb;
    }

    /// <summary>A copy of the unit, same file name, with ExecStart's program replaced.</summary>
    private static string WriteUnitCopy(string directory, string executable)
    {
        Directory.CreateDirectory(directory);
        string text = File.ReadAllText(UnitFile);
        Assert.That(text, Does.Contain("ExecStart=" + PackagedExecStart));
        string path = Path.Combine(directory, UnitName);
        File.WriteAllText(path, text.Replace("ExecStart=/usr/bin/managed-disks ", $"ExecStart={executable} ", StringComparison.Ordinal));
        return path;
    }

    /// <summary>The [Service] directives that are set (comments skipped), each with every value given.</summary>
    private static Dictionary<string, List<string>> Directives(string unit)
    {
        var result = new Dictionary<string, List<string>>();
        string section = "";
        foreach (string raw in Lines(unit))
        {
            string line = raw.Trim();
            if (line.Length == 0 || line[0] is '#' or ';') continue;
            if (line.StartsWith('[')) { section = line; continue; }
            if (section != "[Service]") continue;
            int equals = line.IndexOf('=');
            if (equals < 0) continue;
            string key = line[..equals].Trim();
            if (!result.TryGetValue(key, out var values)) result[key] = values = [];
            values.Add(line[(equals + 1)..].Trim());
        }
        return result;
    }

    private static string[] Lines(string text) => text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    /// <summary>
    /// The environment without what `dotnet test` sets for its own MSBuild and test host, so a
    /// nested `dotnet publish` (in build-deb.sh) or the packaged daemon starts as from a shell.
    /// </summary>
    private static Dictionary<string, string?> CleanEnvironment()
    {
        var environment = new Dictionary<string, string?>();
        foreach (string key in Environment.GetEnvironmentVariables().Keys.Cast<string>())
            if (key.StartsWith("MSBUILD", StringComparison.OrdinalIgnoreCase) || key.StartsWith("VSTEST", StringComparison.OrdinalIgnoreCase)
                || key.StartsWith("DOTNET_", StringComparison.OrdinalIgnoreCase) || key.StartsWith("TESTINGPLATFORM", StringComparison.OrdinalIgnoreCase)
                || key is "MSBuildExtensionsPath" or "MSBuildSDKsPath" or "CREDENTIALS_DIRECTORY" or "NOTIFY_SOCKET")
                environment[key] = null;
        environment["PATH"] = "/usr/bin:/usr/sbin:/bin:/sbin:" + Environment.GetEnvironmentVariable("PATH");
        return environment;
    }

    private static async Task<ToolResult> RunOkAsync(string program, params string[] arguments)
    {
        var result = await RunAsync(program, arguments);
        Assert.That(result.ExitCode, Is.Zero, $"{program} {string.Join(' ', arguments)} failed:\n{result}");
        return result;
    }

    /// <summary>Runs a program by path; a null value in <paramref name="environment"/> removes the variable.</summary>
    private static async Task<ToolResult> RunAsync(string program, IEnumerable<string> arguments,
        IDictionary<string, string?>? environment = null, TimeSpan? timeout = null)
    {
        if (!File.Exists(program)) Assert.Ignore($"{program} is not installed");
        var info = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string argument in arguments) info.ArgumentList.Add(argument);
        foreach (var (key, value) in environment ?? new Dictionary<string, string?>())
            if (value is null) info.Environment.Remove(key); else info.Environment[key] = value;

        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromMinutes(2));
        try
        {
            await process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{program} {string.Join(' ', arguments)} did not finish in time\n{await stdout}\n{await stderr}");
        }
        return new ToolResult(process.ExitCode, await stdout, await stderr);
    }

    /// <summary>The packaged daemon (not the test build) as a child process, ready when it logs so.</summary>
    private sealed class PackagedDaemon : IAsyncDisposable
    {
        private readonly Process _process;
        private readonly StringBuilder _output = new();
        private readonly TaskCompletionSource _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);

        private PackagedDaemon(Process process) => _process = process;

        public string Output
        {
            get { lock (_output) return _output.ToString(); }
        }

        public static async Task<PackagedDaemon> StartAsync(string daemon, string config, string workDir, string credentials)
        {
            var info = new ProcessStartInfo(daemon)
            {
                WorkingDirectory = workDir, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
            };
            foreach (string argument in new[] { "serve", "--config", config }) info.ArgumentList.Add(argument);
            foreach (var (key, value) in CleanEnvironment())
                if (value is null) info.Environment.Remove(key); else info.Environment[key] = value;
            info.Environment["CREDENTIALS_DIRECTORY"] = credentials;

            var process = new Process { StartInfo = info, EnableRaisingEvents = true };
            var served = new PackagedDaemon(process);
            process.OutputDataReceived += (_, e) => served.OnLine(e.Data);
            process.ErrorDataReceived += (_, e) => served.OnLine(e.Data);
            process.Exited += (_, _) => served._ready.TrySetException(new InvalidOperationException("the packaged daemon exited before it was ready"));
            process.Start();
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
            try
            {
                await served._ready.Task.WaitAsync(TimeSpan.FromSeconds(60));
            }
            catch (Exception e)
            {
                await served.DisposeAsync();
                Assert.Fail($"{e.Message}\n{served.Output}");
            }
            return served;
        }

        private void OnLine(string? line)
        {
            if (line is null) return;
            lock (_output) _output.AppendLine(line);
            if (line.Contains("ManagedDisks ready", StringComparison.Ordinal)) _ready.TrySetResult();
        }

        public async Task<int> StopAsync()
        {
            if (!_process.HasExited) Posix.Kill(_process.Id, Posix.SIGTERM);
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            await _process.WaitForExitAsync(cts.Token);
            return _process.ExitCode;
        }

        public async ValueTask DisposeAsync()
        {
            try
            {
                if (!_process.HasExited) await StopAsync();
            }
            catch (OperationCanceledException)
            {
                _process.Kill(entireProcessTree: true);
            }
            _process.Dispose();
        }
    }
}
