namespace ManagedDisks.IntegrationTests.Infrastructure;

/// <summary>The managed-disks command line as an operator runs it, against one configuration file.</summary>
public sealed class ManagedDisksCli(string config)
{
    public static readonly string Dll = Path.Combine(AppContext.BaseDirectory, "managed-disks.dll");

    public Task<ToolResult> RunAsync(params string[] arguments) => Tool.RunAsync("dotnet", [Dll, .. arguments, "--config", config]);

    /// <summary>Runs a command that must succeed.</summary>
    public async Task<ToolResult> OkAsync(params string[] arguments)
    {
        var result = await RunAsync(arguments);
        Assert.That(result.ExitCode, Is.Zero, $"managed-disks {string.Join(' ', arguments)}:\n{result}");
        return result;
    }

    /// <summary>The TOML of a software vault "vault1" and an encryption set "des1" using its key "kek1".</summary>
    public static string VaultAndSet(string setExtra = "") => $"""
        [[key_store]]
        name = "vault1"
        type = "software"

        [[encryption_set]]
        name = "des1"
        key_store = "vault1"
        key = "kek1"
        {setExtra}

        """;
}
