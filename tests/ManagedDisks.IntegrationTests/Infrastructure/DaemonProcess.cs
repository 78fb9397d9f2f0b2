using System.Diagnostics;
using System.Text;
using System.Text.RegularExpressions;

namespace ManagedDisks.IntegrationTests.Infrastructure;

/// <summary>
/// The real managed-disks daemon as a child process, with its own state folder. Readiness is
/// the daemon's "ManagedDisks ready" log line, awaited, never guessed with a sleep.
/// </summary>
public sealed partial class DaemonProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _output = new();
    private readonly TaskCompletionSource _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly object _gate = new();
    private readonly List<(Regex Pattern, TaskCompletionSource<Match> Seen)> _waiters = [];

    private DaemonProcess(Process process, string workDir, string stateDir)
    {
        _process = process;
        WorkDir = workDir;
        StateDir = stateDir;
    }

    public string WorkDir { get; }
    public string StateDir { get; }
    public string SocketPath => Path.Combine(StateDir, "nbd.sock");
    public int? TcpPort { get; private set; }
    public int ProcessId => _process.Id;
    public bool HasExited => _process.HasExited;

    public string Output
    {
        get { lock (_gate) return _output.ToString(); }
    }

    /// <summary>An nbd+unix URI for libnbd tools and qemu.</summary>
    public string Uri(string export = "disk0") => $"nbd+unix:///{export}?socket={SocketPath}";

    public string TcpUri(string export = "disk0") => $"nbd://127.0.0.1:{TcpPort}/{export}";

    /// <summary>A fresh work folder with short paths (Unix socket paths are limited to 107 bytes).</summary>
    public static string NewWorkDir()
    {
        string dir = Path.Combine("/tmp/md-tests", Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(dir);
        return dir;
    }

    /// <summary>A disks.toml with a Unix socket (and optionally TCP on a free port) under the work folder.</summary>
    public static string Config(string stateDir, string disks, bool tcp = false, string daemonExtra = "")
    {
        string listen = tcp ? $"\"unix:{stateDir}/nbd.sock\", \"tcp:127.0.0.1:0\"" : $"\"unix:{stateDir}/nbd.sock\"";
        return $"""
                [daemon]
                state_dir = "{stateDir}"
                listen = [{listen}]
                admin_socket = "{stateDir}/admin.sock"
                {daemonExtra}

                {disks}
                """;
    }

    public static string Disk(string name, string size = "64M", string extra = "") =>
        $"[[disk]]\nname = \"{name}\"\nsize = \"{size}\"\n{extra}\n";

    /// <summary>Writes the config into a new work folder and starts a daemon on it.</summary>
    public static Task<DaemonProcess> StartAsync(string disks = "", bool tcp = false, string daemonExtra = "")
    {
        string workDir = NewWorkDir();
        string stateDir = Path.Combine(workDir, "state");
        string configPath = Path.Combine(workDir, "disks.toml");
        File.WriteAllText(configPath, Config(stateDir, disks.Length > 0 ? disks : Disk("disk0"), tcp, daemonExtra));
        return StartAsync(["serve", "--config", configPath], workDir, stateDir);
    }

    public static async Task<DaemonProcess> StartAsync(string[] arguments, string workDir, string stateDir, bool waitForReady = true,
        IReadOnlyDictionary<string, string>? environment = null)
    {
        var daemon = Launch(arguments, workDir, stateDir, environment);
        if (waitForReady) await daemon.WaitReadyAsync().ConfigureAwait(false);
        return daemon;
    }

    /// <param name="environment">Extra environment variables for the daemon, e.g. SOFTHSM2_CONF.</param>
    public static DaemonProcess Launch(string[] arguments, string workDir, string stateDir, IReadOnlyDictionary<string, string>? environment = null)
    {
        var info = new ProcessStartInfo("dotnet")
        {
            WorkingDirectory = workDir,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        info.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "managed-disks.dll"));
        foreach (string argument in arguments) info.ArgumentList.Add(argument);
        info.Environment["Logging__LogLevel__Default"] = "Debug";
        info.Environment["Logging__LogLevel__Microsoft"] = "Warning";
        if (environment is not null)
            foreach (var (key, value) in environment) info.Environment[key] = value;

        var process = new Process { StartInfo = info, EnableRaisingEvents = true };
        var daemon = new DaemonProcess(process, workDir, stateDir);
        process.OutputDataReceived += (_, e) => daemon.OnLine(e.Data);
        process.ErrorDataReceived += (_, e) => daemon.OnLine(e.Data);
        process.Exited += (_, _) => daemon.OnExited();
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return daemon;
    }

    private void OnLine(string? line)
    {
        if (line is null) return;
        List<(Regex, TaskCompletionSource<Match>)> matched = [];
        lock (_gate)
        {
            _output.AppendLine(line);
            if (TcpPortLine().Match(line) is { Success: true } port) TcpPort = int.Parse(port.Groups[1].Value);
            foreach (var waiter in _waiters)
                if (waiter.Pattern.Match(line) is { Success: true } m) { waiter.Seen.TrySetResult(m); matched.Add(waiter); }
            foreach (var m in matched) _waiters.Remove(m);
        }
        if (line.Contains("ManagedDisks ready", StringComparison.Ordinal)) _ready.TrySetResult();
    }

    private void OnExited()
    {
        _ready.TrySetException(new InvalidOperationException("the daemon exited before it was ready"));
        lock (_gate)
            foreach (var waiter in _waiters) waiter.Seen.TrySetException(new InvalidOperationException("the daemon exited"));
    }

    public async Task WaitReadyAsync()
    {
        try
        {
            await _ready.Task.WaitAsync(TimeSpan.FromSeconds(60)).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            throw new InvalidOperationException($"daemon not ready: {e.Message}\n--- daemon output ---\n{Output}", e);
        }
    }

    /// <summary>Waits for a log line matching <paramref name="pattern"/>, including lines already printed.</summary>
    public Task<Match> WaitForLogAsync(string pattern, TimeSpan? timeout = null)
    {
        var regex = new Regex(pattern);
        var seen = new TaskCompletionSource<Match>(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_gate)
        {
            foreach (string line in _output.ToString().Split('\n'))
                if (regex.Match(line) is { Success: true } m) return Task.FromResult(m);
            _waiters.Add((regex, seen));
        }
        return seen.Task.WaitAsync(timeout ?? TimeSpan.FromSeconds(30));
    }

    public async Task<int> WaitForExitAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        await _process.WaitForExitAsync(cts.Token).ConfigureAwait(false);
        return _process.ExitCode;
    }

    /// <summary>SIGTERM, as systemd stops the service; returns the exit code.</summary>
    public async Task<int> StopAsync()
    {
        if (!_process.HasExited) Posix.Kill(_process.Id, Posix.SIGTERM);
        return await WaitForExitAsync(TimeSpan.FromSeconds(30)).ConfigureAwait(false);
    }

    public void Kill()
    {
        if (!_process.HasExited) _process.Kill(entireProcessTree: true);
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (!_process.HasExited) await StopAsync().ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            Kill();
        }
        _process.Dispose();
        TestContext.Out.WriteLine("--- daemon output ---");
        TestContext.Out.WriteLine(Output);
    }

    [GeneratedRegex(@"Listening for NBD clients on tcp:[^:]+:(\d+)")]
    private static partial Regex TcpPortLine();
}
