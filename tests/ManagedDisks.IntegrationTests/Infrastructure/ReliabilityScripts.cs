namespace ManagedDisks.IntegrationTests.Infrastructure;

/// <summary>The scripts in tests/reliability, which tests run in short and people run long.</summary>
public static class ReliabilityScripts
{
    public static string Path(string name)
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            string candidate = System.IO.Path.Combine(dir.FullName, "tests", "reliability", name);
            if (File.Exists(candidate)) return candidate;
        }
        Assert.Fail($"tests/reliability/{name} not found above {AppContext.BaseDirectory}");
        return "";
    }
}
