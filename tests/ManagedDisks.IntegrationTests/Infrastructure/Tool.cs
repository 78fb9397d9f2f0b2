using System.Diagnostics;

namespace ManagedDisks.IntegrationTests.Infrastructure;

public sealed record ToolResult(int ExitCode, string StdOut, string StdErr)
{
    public override string ToString() => $"exit {ExitCode}\n--- stdout ---\n{StdOut}\n--- stderr ---\n{StdErr}";
}

/// <summary>Runs the real client tools; a missing tool skips the test, as nbdkit's suite does.</summary>
public static class Tool
{
    public static void Require(string name)
    {
        if (Find(name) is null) Assert.Ignore($"{name} is not installed (see .ci/run for the packages)");
    }

    public static string? Find(string name) =>
        new[] { "/usr/bin", "/usr/sbin", "/usr/local/bin", "/bin", "/sbin" }
            .Select(dir => Path.Combine(dir, name)).FirstOrDefault(File.Exists);

    public static async Task<ToolResult> RunAsync(string name, IEnumerable<string> arguments,
        IDictionary<string, string>? environment = null, TimeSpan? timeout = null, string? workingDirectory = null)
    {
        Require(name);
        var info = new ProcessStartInfo(Find(name)!)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory ?? Environment.CurrentDirectory,
        };
        foreach (string argument in arguments) info.ArgumentList.Add(argument);
        // nbdsh must run on Debian's python3, which has the nbd module; a pyenv python3 does not.
        info.Environment["PATH"] = "/usr/bin:/usr/sbin:/bin:/sbin:" + Environment.GetEnvironmentVariable("PATH");
        if (environment is not null)
            foreach (var (key, value) in environment) info.Environment[key] = value;

        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromMinutes(3));
        try
        {
            await process.WaitForExitAsync(cts.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{name} {string.Join(' ', arguments)} did not finish in time\n{await stdout}\n{await stderr}");
        }
        return new ToolResult(process.ExitCode, await stdout.ConfigureAwait(false), await stderr.ConfigureAwait(false));
    }

    /// <summary>Runs a tool and fails the test, showing its output, unless it exits 0.</summary>
    public static async Task<ToolResult> RunOkAsync(string name, params string[] arguments)
    {
        var result = await RunAsync(name, arguments).ConfigureAwait(false);
        Assert.That(result.ExitCode, Is.Zero, $"{name} {string.Join(' ', arguments)} failed:\n{result}");
        return result;
    }

    /// <summary>Runs an nbdsh script from the scripts folder against a URI.</summary>
    public static Task<ToolResult> NbdshScriptAsync(string script, string uri, params string[] nbdshOptions)
    {
        string path = Path.Combine(AppContext.BaseDirectory, "scripts", script);
        var arguments = new List<string>(nbdshOptions) { "-c", $"exec(open('{path}').read())" };
        return RunAsync("nbdsh", arguments, new Dictionary<string, string> { ["URI"] = uri });
    }
}
