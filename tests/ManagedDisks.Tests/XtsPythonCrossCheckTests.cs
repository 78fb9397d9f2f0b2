using System.Diagnostics;
using static ManagedDisks.Tests.XtsTestSupport;

namespace ManagedDisks.Tests;

/// <summary>
/// An independent implementation checks ours: Debian's python3-cryptography (OpenSSL's XTS)
/// decrypts what we encrypted and encrypts the same plaintext, sector by sector, with the tweak
/// dm-crypt's plain64 uses (the sector number, 16 bytes little-endian). Skipped when
/// python3-cryptography is not installed (apt-get install python3-cryptography).
/// </summary>
[TestFixtureSource(typeof(XtsTestSupport), nameof(XtsTestSupport.Engines))]
public class XtsPythonCrossCheckTests(string engine)
{
    private const string Python = "/usr/bin/python3";

    private const string Script = """
        import sys
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

        directory, first, sector_size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
        read = lambda name: open(f"{directory}/{name}", "rb").read()
        key, plaintext, ciphertext = read("key.bin"), read("plaintext.bin"), read("ciphertext.bin")
        assert len(key) == 64 and len(plaintext) == len(ciphertext) and len(plaintext) % sector_size == 0

        failures = []
        for i in range(len(plaintext) // sector_size):
            tweak = (first + i).to_bytes(16, "little")
            p = plaintext[i * sector_size:(i + 1) * sector_size]
            c = ciphertext[i * sector_size:(i + 1) * sector_size]
            decryptor = Cipher(algorithms.AES(key), modes.XTS(tweak)).decryptor()
            if decryptor.update(c) + decryptor.finalize() != p:
                failures.append(f"sector {first + i}: python's decryption of our ciphertext differs")
            encryptor = Cipher(algorithms.AES(key), modes.XTS(tweak)).encryptor()
            if encryptor.update(p) + encryptor.finalize() != c:
                failures.append(f"sector {first + i}: python's encryption differs from ours")
        print("\n".join(failures) if failures else f"ok {len(plaintext) // sector_size} sectors")
        sys.exit(1 if failures else 0)
        """;

    private string _dir = null!;

    [OneTimeSetUp]
    public void RequirePythonCryptography()
    {
        if (!File.Exists(Python)) Assert.Ignore($"{Python} is missing.");
        var (exit, output) = Run("-c", "import cryptography.hazmat.primitives.ciphers");
        if (exit != 0) Assert.Ignore($"python3-cryptography is missing (apt-get install python3-cryptography): {output}");
    }

    [SetUp]
    public void SetUp() => _dir = Directory.CreateTempSubdirectory("md-xts-").FullName;

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, recursive: true);

    public static IEnumerable<TestCaseData> Cases()
    {
        yield return new TestCaseData(512, 64, 0UL);
        yield return new TestCaseData(512, 16, 0xffff_ffff_fff0UL);
        yield return new TestCaseData(4096, 16, 0UL);
        yield return new TestCaseData(4096, 8, ulong.MaxValue - 7);
        yield return new TestCaseData(144, 9, 0x1_0000_0000UL); // 9 blocks: the 8-wide loop plus a tail
    }

    [TestCaseSource(nameof(Cases))]
    public void PythonCryptographyAgrees(int sectorSize, int sectors, ulong firstSector) =>
        Check(sectorSize, sectors, firstSector);

    [Test]
    public void PythonCryptographyAgreesAtRandomSectors([Values(512, 4096)] int sectorSize) =>
        Check(sectorSize, 12, BitConverter.ToUInt64(RandomBytes(8)) >> 1);

    private void Check(int sectorSize, int sectors, ulong firstSector)
    {
        byte[] key = RandomKey();
        byte[] plaintext = RandomBytes(sectorSize * sectors);
        var ciphertext = new byte[plaintext.Length];
        using (var cipher = Create(key, engine))
            cipher.Encrypt(plaintext, ciphertext, firstSector, sectorSize);

        File.WriteAllBytes(Path.Combine(_dir, "key.bin"), key);
        File.WriteAllBytes(Path.Combine(_dir, "plaintext.bin"), plaintext);
        File.WriteAllBytes(Path.Combine(_dir, "ciphertext.bin"), ciphertext);
        var (exit, output) = Run("-c", Script, _dir, firstSector.ToString(), sectorSize.ToString());
        Assert.That(exit, Is.Zero, $"first sector {firstSector}: {output}");
        Assert.That(output, Does.StartWith($"ok {sectors} sectors"));
    }

    private static (int Exit, string Output) Run(params string[] arguments)
    {
        var start = new ProcessStartInfo(Python) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string argument in arguments) start.ArgumentList.Add(argument);
        using var process = Process.Start(start)!;
        var stderr = process.StandardError.ReadToEndAsync();
        string stdout = process.StandardOutput.ReadToEnd();
        if (!process.WaitForExit(60_000))
        {
            process.Kill();
            Assert.Fail($"{Python} did not finish within 60 s.");
        }
        return (process.ExitCode, stdout + stderr.Result);
    }
}
