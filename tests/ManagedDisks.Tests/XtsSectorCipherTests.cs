using ManagedDisks.Encryption;
using static ManagedDisks.Tests.XtsTestSupport;

namespace ManagedDisks.Tests;

/// <summary>The XTS layer's own properties, on every engine: sector splitting, in place, arguments, disposal.</summary>
[TestFixtureSource(typeof(XtsTestSupport), nameof(XtsTestSupport.Engines))]
public class XtsSectorCipherTests(string engine)
{
    private static readonly int[] SectorSizes = [16, 48, 144, 512, 4096];

    [Test]
    public void DecryptInvertsEncrypt([ValueSource(nameof(SectorSizes))] int sectorSize)
    {
        using var cipher = Create(RandomKey(), engine);
        byte[] plaintext = RandomBytes(5 * sectorSize);
        var ciphertext = new byte[plaintext.Length];
        cipher.Encrypt(plaintext, ciphertext, 1234, sectorSize);
        Assert.That(ciphertext, Is.Not.EqualTo(plaintext));

        var decrypted = new byte[plaintext.Length];
        cipher.Decrypt(ciphertext, decrypted, 1234, sectorSize);
        Assert.That(decrypted, Is.EqualTo(plaintext));
    }

    /// <summary>9 sectors: the portable engine computes tweaks four sectors at a time (4 + 4 + 1).</summary>
    [Test]
    public void OneCallEqualsOneCallPerSector([Values(512, 4096, 144)] int sectorSize)
    {
        using var cipher = Create(RandomKey(), engine);
        const int sectors = 9;
        const ulong first = 0xffff_fffe; // crosses 2^32
        byte[] plaintext = RandomBytes(sectors * sectorSize);

        var whole = new byte[plaintext.Length];
        cipher.Encrypt(plaintext, whole, first, sectorSize);
        var pieces = new byte[plaintext.Length];
        for (int i = 0; i < sectors; i++)
            cipher.Encrypt(plaintext.AsSpan(i * sectorSize, sectorSize), pieces.AsSpan(i * sectorSize, sectorSize), first + (ulong)i, sectorSize);
        Assert.That(whole, Is.EqualTo(pieces));

        var decrypted = new byte[plaintext.Length];
        for (int i = 0; i < sectors; i++)
            cipher.Decrypt(whole.AsSpan(i * sectorSize, sectorSize), decrypted.AsSpan(i * sectorSize, sectorSize), first + (ulong)i, sectorSize);
        Assert.That(decrypted, Is.EqualTo(plaintext));
    }

    [Test]
    public void InPlaceEqualsOutOfPlace([Values(512, 4096, 48)] int sectorSize)
    {
        using var cipher = Create(RandomKey(), engine);
        byte[] plaintext = RandomBytes(3 * sectorSize);
        var expected = new byte[plaintext.Length];
        cipher.Encrypt(plaintext, expected, 7, sectorSize);

        byte[] buffer = (byte[])plaintext.Clone();
        cipher.Encrypt(buffer, buffer, 7, sectorSize);
        Assert.That(buffer, Is.EqualTo(expected));
        cipher.Decrypt(buffer, buffer, 7, sectorSize);
        Assert.That(buffer, Is.EqualTo(plaintext));
    }

    [Test]
    public void SectorNumberChangesTheCiphertext()
    {
        using var cipher = Create(RandomKey(), engine);
        var plaintext = new byte[512];
        var a = new byte[512];
        var b = new byte[512];
        cipher.Encrypt(plaintext, a, 0, 512);
        cipher.Encrypt(plaintext, b, 1UL << 63, 512);
        Assert.That(a, Is.Not.EqualTo(b));
        Assert.That(a.AsSpan(0, 16).SequenceEqual(a.AsSpan(16, 16)), Is.False, "blocks of a sector get different tweaks");
    }

    [Test]
    public void ConcurrentCallsAgreeWithSequentialOnes()
    {
        using var cipher = Create(RandomKey(), engine);
        byte[][] inputs = [.. Enumerable.Range(0, 32).Select(_ => RandomBytes(8 * 512))];
        byte[][] sequential = [.. inputs.Select((input, i) =>
        {
            var output = new byte[input.Length];
            cipher.Encrypt(input, output, (ulong)i * 8, 512);
            return output;
        })];
        var parallel = new byte[inputs.Length][];
        Parallel.For(0, inputs.Length, new ParallelOptions { MaxDegreeOfParallelism = 8 }, i =>
        {
            var output = new byte[inputs[i].Length];
            cipher.Encrypt(inputs[i], output, (ulong)i * 8, 512);
            parallel[i] = output;
        });
        Assert.That(parallel, Is.EqualTo(sequential));
    }

    [Test]
    public void EmptyInputIsANoOp()
    {
        using var cipher = Create(RandomKey(), engine);
        Assert.DoesNotThrow(() => cipher.Encrypt([], [], ulong.MaxValue, 512));
        Assert.DoesNotThrow(() => cipher.Decrypt([], [], ulong.MaxValue, 4096));
    }

    [TestCase(0)]
    [TestCase(-16)]
    [TestCase(8)]
    [TestCase(15)]
    [TestCase(520)]
    public void RejectsSectorSizesThatAreNotWholeBlocks(int sectorSize)
    {
        using var cipher = Create(RandomKey(), engine);
        var buffer = new byte[1040];
        var ex = Assert.Throws<ArgumentException>(() => cipher.Encrypt(buffer, buffer, 0, sectorSize));
        Assert.That(ex!.ParamName, Is.EqualTo("sectorSize"));
        Assert.That(ex.Message, Does.Contain("multiple of 16"));
        Assert.Throws<ArgumentException>(() => cipher.Decrypt(buffer, buffer, 0, sectorSize));
    }

    [Test]
    public void RejectsLengthsThatAreNotWholeSectors()
    {
        using var cipher = Create(RandomKey(), engine);
        var input = new byte[512 + 16];
        var ex = Assert.Throws<ArgumentException>(() => cipher.Encrypt(input, new byte[input.Length], 0, 512));
        Assert.That(ex!.ParamName, Is.EqualTo("plaintext"));
        Assert.That(ex.Message, Does.Contain("whole number of 512-byte sectors"));
        ex = Assert.Throws<ArgumentException>(() => cipher.Decrypt(input, new byte[input.Length], 0, 512));
        Assert.That(ex!.ParamName, Is.EqualTo("ciphertext"));
    }

    [Test]
    public void RejectsOutputOfAnotherLength()
    {
        using var cipher = Create(RandomKey(), engine);
        var ex = Assert.Throws<ArgumentException>(() => cipher.Encrypt(new byte[1024], new byte[512], 0, 512));
        Assert.That(ex!.ParamName, Is.EqualTo("ciphertext"));
        ex = Assert.Throws<ArgumentException>(() => cipher.Decrypt(new byte[512], new byte[1024], 0, 512));
        Assert.That(ex!.ParamName, Is.EqualTo("plaintext"));
    }

    [Test]
    public void RejectsPartlyOverlappingBuffers()
    {
        using var cipher = Create(RandomKey(), engine);
        var buffer = new byte[1024 + 16];
        var ex = Assert.Throws<ArgumentException>(() => cipher.Encrypt(buffer.AsSpan(0, 1024), buffer.AsSpan(16, 1024), 0, 512));
        Assert.That(ex!.Message, Does.Contain("overlap"));
        Assert.Throws<ArgumentException>(() => cipher.Decrypt(buffer.AsSpan(16, 1024), buffer.AsSpan(0, 1024), 0, 512));
    }

    [Test]
    public void RejectsSectorNumbersPastTheLast()
    {
        using var cipher = Create(RandomKey(), engine);
        var buffer = new byte[1024];
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => cipher.Encrypt(buffer, buffer, ulong.MaxValue, 512));
        Assert.That(ex!.ParamName, Is.EqualTo("firstSector"));
        Assert.DoesNotThrow(() => cipher.Encrypt(buffer, buffer, ulong.MaxValue - 1, 512), "the last two sectors");
        Assert.DoesNotThrow(() => cipher.Decrypt(buffer.AsSpan(0, 512), buffer.AsSpan(0, 512), ulong.MaxValue, 512));
    }

    [Test]
    public void RejectsAKeyWithEqualHalves()
    {
        byte[] half = RandomBytes(32);
        var ex = Assert.Throws<ArgumentException>(() => Create([.. half, .. half], engine));
        Assert.That(ex!.Message, Does.Contain("key1, key2"));
    }

    [Test]
    public void DisposeZeroesTheKeyScheduleAndLaterCallsThrow()
    {
        var cipher = Create(RandomKey(), engine);
        Assert.That(cipher.KeySchedule.IsClosed, Is.False);
        cipher.Dispose();
        Assert.That(cipher.KeySchedule.IsClosed, Is.True, "the schedule's SecureMemoryHandle is released (zeroed and freed)");
        var buffer = new byte[512];
        Assert.Throws<ObjectDisposedException>(() => cipher.Encrypt(buffer, buffer, 0, 512));
        Assert.Throws<ObjectDisposedException>(() => cipher.Decrypt(buffer, buffer, 0, 512));
        Assert.DoesNotThrow(cipher.Dispose, "a second Dispose is harmless");
    }

    [Test]
    public void TheKeyMayBeDisposedOnceTheCipherExists()
    {
        byte[] key = RandomKey();
        byte[] plaintext = RandomBytes(512);
        var expected = new byte[512];
        using (var reference = Create(key, engine)) reference.Encrypt(plaintext, expected, 3, 512);

        var dek = DataEncryptionKey.FromBytes(key);
        using var cipher = Create(dek, engine);
        dek.Dispose();
        var actual = new byte[512];
        cipher.Encrypt(plaintext, actual, 3, 512);
        Assert.That(actual, Is.EqualTo(expected));
    }
}

/// <summary>Properties that involve both engines at once or neither.</summary>
public class XtsEngineAgreementTests
{
    [Test]
    public void HardwareAndPortableEnginesAgreeOnRandomInputs([Values(16, 48, 144, 512, 4096)] int sectorSize)
    {
        if (!XtsSectorCipher.IsHardwareAccelerated) Assert.Ignore("This CPU has no AES-NI: only one engine.");
        for (int round = 0; round < 8; round++)
        {
            byte[] key = RandomKey();
            using var hardware = Create(key, AesNi);
            using var portable = Create(key, Portable);
            byte[] plaintext = RandomBytes((1 + round) * sectorSize);
            ulong first = BitConverter.ToUInt64(RandomBytes(8)) >> round * 8;
            first = Math.Min(first, ulong.MaxValue - (ulong)round);

            var a = new byte[plaintext.Length];
            var b = new byte[plaintext.Length];
            hardware.Encrypt(plaintext, a, first, sectorSize);
            portable.Encrypt(plaintext, b, first, sectorSize);
            Assert.That(a, Is.EqualTo(b), $"encrypt, sector {first}");

            hardware.Decrypt(a, a, first, sectorSize);
            portable.Decrypt(b, b, first, sectorSize);
            Assert.That(a, Is.EqualTo(plaintext));
            Assert.That(b, Is.EqualTo(plaintext));
        }
    }

    [Test]
    public void DefaultEngineIsAesNiWhenTheCpuHasIt()
    {
        using var key = DataEncryptionKey.Generate();
        using var cipher = new XtsSectorCipher(key);
        Assert.That(cipher.Implementation,
            Is.EqualTo(XtsSectorCipher.IsHardwareAccelerated ? XtsImplementation.AesNi : XtsImplementation.Portable));
        Assert.That(XtsSectorCipher.IsHardwareAccelerated, Is.EqualTo(System.Runtime.Intrinsics.X86.Aes.IsSupported));
    }

    [Test]
    public void ANullOrDisposedKeyIsRejected()
    {
        Assert.Throws<ArgumentNullException>(() => _ = new XtsSectorCipher(null!));
        var key = DataEncryptionKey.Generate();
        key.Dispose();
        Assert.Throws<ObjectDisposedException>(() => _ = new XtsSectorCipher(key));
    }
}
