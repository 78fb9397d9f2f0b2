namespace ManagedDisks.IntegrationTests.Infrastructure;

/// <summary>
/// A SoftHSM2 token reached through native/hung-pkcs11.c, a PKCS#11 module that forwards to
/// SoftHSM2 and, while <see cref="Hang"/> is in effect, blocks every call that reaches the token,
/// as an HSM that stopped answering blocks its callers. Skipped without SoftHSM2 or libp11-kit-dev.
/// </summary>
public sealed class HungHsm
{
    public const string SoftHsmModule = "/usr/lib/softhsm/libsofthsm2.so";
    public const string TokenLabel = "disks";
    public const string Pin = "1234";

    private HungHsm(string module, string trigger, string pinFile, Dictionary<string, string> environment)
    {
        Module = module;
        Trigger = trigger;
        PinFile = pinFile;
        Environment = environment;
    }

    /// <summary>The module to name in [[key_store]] module.</summary>
    public string Module { get; }

    public string PinFile { get; }

    /// <summary>For the daemon and the CLI: SoftHSM2's token folder and the module's trigger file.</summary>
    public Dictionary<string, string> Environment { get; }

    private string Trigger { get; }

    /// <summary>A fresh token labelled <see cref="TokenLabel"/> under <paramref name="workDir"/>.</summary>
    public static async Task<HungHsm> CreateAsync(string workDir)
    {
        if (!File.Exists(SoftHsmModule)) Assert.Ignore("SoftHSM2 is not installed (apt-get install softhsm2 opensc)");
        Tool.Require("softhsm2-util");
        string module = await NativeProgram.BuildAsync("hung-pkcs11.c", "p11-kit-1", sharedLibrary: true, "-ldl");
        Directory.CreateDirectory(Path.Combine(workDir, "tokens"));
        string softhsmConf = Path.Combine(workDir, "softhsm2.conf");
        await File.WriteAllTextAsync(softhsmConf, $"directories.tokendir = {workDir}/tokens\n");
        var environment = new Dictionary<string, string>
        {
            ["SOFTHSM2_CONF"] = softhsmConf,
            ["HUNG_PKCS11_MODULE"] = SoftHsmModule,
            ["HUNG_PKCS11_TRIGGER"] = Path.Combine(workDir, "hsm-hung"),
        };
        var init = await Tool.RunAsync("softhsm2-util", ["--init-token", "--free", "--label", TokenLabel, "--pin", Pin, "--so-pin", "5678"], environment);
        Assert.That(init.ExitCode, Is.Zero, init.ToString());
        string pinFile = Path.Combine(workDir, "hsm.pin");
        await File.WriteAllTextAsync(pinFile, Pin + "\n");
        return new HungHsm(module, environment["HUNG_PKCS11_TRIGGER"], pinFile, environment);
    }

    private string BlockedLog => Trigger + ".blocked";

    /// <summary>From now on every call into the token blocks until <see cref="Answer"/>.</summary>
    public void Hang()
    {
        File.Delete(BlockedLog);
        File.WriteAllText(Trigger, "");
    }

    /// <summary>The HSM answers again: blocked calls go on.</summary>
    public void Answer() => File.Delete(Trigger);

    /// <summary>The PKCS#11 functions that have blocked since <see cref="Hang"/>, in order.</summary>
    public string[] BlockedCalls => File.Exists(BlockedLog) ? File.ReadAllLines(BlockedLog) : [];

    /// <summary>Waits until some caller is blocked inside the token, and returns the function.</summary>
    public async Task<string> WaitForBlockedCallAsync(TimeSpan timeout)
    {
        using var deadline = new CancellationTokenSource(timeout);
        while (BlockedCalls.Length == 0)
        {
            if (deadline.IsCancellationRequested) throw new TimeoutException($"nothing called into the hung HSM within {timeout}");
            await Task.Delay(50);
        }
        return BlockedCalls[0];
    }
}
