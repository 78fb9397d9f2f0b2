using System.Security.Cryptography;
using System.Text;

namespace ManagedDisks.IntegrationTests.Infrastructure;

/// <summary>
/// The small C helpers under native/ (a fault-injecting FUSE file system, a hanging PKCS#11
/// module), compiled with gcc on first use and cached by the hash of their source and flags.
/// A missing compiler or header skips the test, as a missing tool does.
/// </summary>
public static class NativeProgram
{
    private static readonly string CacheDir = "/tmp/md-tests/native";
    private static readonly SemaphoreSlim Gate = new(1, 1);

    /// <param name="source">The file name under native/.</param>
    /// <param name="pkgConfig">The pkg-config package whose flags it needs (its -dev package must be installed).</param>
    /// <param name="sharedLibrary">Build a .so rather than an executable.</param>
    public static async Task<string> BuildAsync(string source, string pkgConfig, bool sharedLibrary = false, params string[] extraFlags)
    {
        Tool.Require("gcc");
        Tool.Require("pkg-config");
        var flags = await Tool.RunAsync("pkg-config", ["--cflags", "--libs", pkgConfig]);
        if (flags.ExitCode != 0) Assert.Ignore($"pkg-config knows no {pkgConfig}: install its -dev package (see PACKAGES in test.sh)");

        string sourcePath = Path.Combine(AppContext.BaseDirectory, "native", source);
        string[] arguments =
        [
            "-Wall", "-Wextra", "-Werror", "-O2", .. sharedLibrary ? new[] { "-shared", "-fPIC" } : [],
            sourcePath, .. flags.StdOut.Split(' ', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries), .. extraFlags,
        ];
        string hash = Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(
            File.ReadAllText(sourcePath) + "\n" + string.Join(' ', arguments)))).ToLowerInvariant()[..16];
        string output = Path.Combine(CacheDir, $"{Path.GetFileNameWithoutExtension(source)}-{hash}{(sharedLibrary ? ".so" : "")}");

        await Gate.WaitAsync();
        try
        {
            if (File.Exists(output)) return output;
            Directory.CreateDirectory(CacheDir);
            string temporary = output + ".tmp";
            var built = await Tool.RunAsync("gcc", [.. arguments, "-o", temporary]);
            Assert.That(built.ExitCode, Is.Zero, $"gcc {source} failed:\n{built}");
            File.Move(temporary, output, overwrite: true);
            return output;
        }
        finally
        {
            Gate.Release();
        }
    }
}
