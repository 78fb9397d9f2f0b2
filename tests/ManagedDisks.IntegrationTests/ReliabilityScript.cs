using System.Globalization;
using System.Text.RegularExpressions;

namespace ManagedDisks.IntegrationTests;

/// <summary>
/// Runs a script of tests/reliability (copied next to the tests) against the daemon built with
/// them, in a fresh work folder that is deleted when the test passes and kept when it fails.
/// </summary>
internal static class ReliabilityScript
{
    public static string DaemonDll => Path.Combine(AppContext.BaseDirectory, "managed-disks.dll");

    public static string PathOf(string script) => Path.Combine(AppContext.BaseDirectory, "reliability", script);

    public static async Task<ToolResult> RunAsync(string interpreter, string script, IEnumerable<string> arguments,
        IDictionary<string, string>? environment = null, TimeSpan? timeout = null)
    {
        var result = await Tool.RunAsync(interpreter, [PathOf(script), .. arguments], environment, timeout ?? TimeSpan.FromMinutes(3));
        TestContext.Out.WriteLine(result.ToString());
        return result;
    }

    /// <summary>The number captured by <paramref name="pattern"/>'s first group; fails the test if absent.</summary>
    public static double Number(string output, string pattern)
    {
        var match = Regex.Match(output, pattern);
        Assert.That(match.Success, Is.True, $"no '{pattern}' in the output:\n{output}");
        return double.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture);
    }

    public static void DeleteWorkIfPassed(string work)
    {
        if (TestContext.CurrentContext.Result.Outcome.Status != NUnit.Framework.Interfaces.TestStatus.Failed && Directory.Exists(work))
            Directory.Delete(work, recursive: true);
    }
}
