using BenchmarkDotNet.Attributes;
using ManagedDisks.Encryption;

namespace ManagedDisks.Benchmarks;

/// <summary>
/// XTS-AES-256 throughput per call, one sector per call, as `openssl speed -evp aes-256-xts
/// -bytes N` measures it (one IV per N-byte call). GB/s = Bytes / mean time.
/// Compare with OpenSSL in the same sitting; see bench/XTS-RESULTS.md.
/// </summary>
[MemoryDiagnoser]
public class XtsBenchmarks
{
    private XtsSectorCipher _cipher = null!;
    private byte[] _input = null!;
    private byte[] _output = null!;
    private ulong _sector;

    [Params("aes-ni", "portable")]
    public string Engine { get; set; } = "aes-ni";

    [Params(512, 4096)]
    public int Bytes { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        using var key = DataEncryptionKey.Generate();
        _cipher = new XtsSectorCipher(key, Engine == "aes-ni" ? XtsImplementation.AesNi : XtsImplementation.Portable);
        _input = new byte[Bytes];
        new Random(42).NextBytes(_input);
        _output = new byte[Bytes];
    }

    [GlobalCleanup]
    public void Cleanup() => _cipher.Dispose();

    [Benchmark]
    public void Encrypt() => _cipher.Encrypt(_input, _output, _sector++, Bytes);

    [Benchmark]
    public void Decrypt() => _cipher.Decrypt(_input, _output, _sector++, Bytes);
}
