using System.Numerics;
using System.Security.Cryptography;

namespace ManagedDisks.Encryption;

/// <summary>
/// XTS-AES-256 (IEEE 1619-2007; NIST SP 800-38E) over whole data units ("sectors"). Data unit
/// <c>i</c> uses the tweak <c>i</c> as a 128-bit little-endian number, encrypted with key2: the
/// same bytes as dm-crypt's <c>aes-xts-plain64</c> (with <c>--sector-size 4096
/// --iv-large-sectors</c> for 4 KiB sectors), so a disk image can be opened with cryptsetup.
/// Sectors are multiples of 16 bytes, so no ciphertext stealing is needed.
/// </summary>
/// <remarks>
/// The expanded round keys live in native memory and are zeroed on <see cref="Dispose"/>.
/// Encrypt and Decrypt may run concurrently on any number of threads (the object holds no
/// mutable state). Dispose must not race with them: dispose once every I/O has finished, as with
/// any other native resource; a call after Dispose throws <see cref="ObjectDisposedException"/>.
/// </remarks>
public sealed class XtsSectorCipher : IDisposable
{
    private readonly XtsEngine _engine;
    private bool _disposed;

    /// <summary>Expands <paramref name="key"/> for the fastest engine this CPU supports.</summary>
    /// <exception cref="ArgumentException">key1 equals key2 (IEEE 1619-2007 5.1, SP 800-38E).</exception>
    /// <exception cref="ObjectDisposedException"><paramref name="key"/> has been disposed.</exception>
    public XtsSectorCipher(DataEncryptionKey key)
        : this(key, XtsImplementation.Auto)
    {
    }

    /// <summary>Expands <paramref name="key"/> for a chosen engine (tests and benchmarks run both).</summary>
    /// <exception cref="PlatformNotSupportedException">AES-NI is asked for on a CPU without it.</exception>
    internal XtsSectorCipher(DataEncryptionKey key, XtsImplementation implementation)
    {
        ArgumentNullException.ThrowIfNull(key);
        if (implementation == XtsImplementation.AesNi && !AesNiXtsEngine.IsSupported)
            throw new PlatformNotSupportedException("This CPU has no AES-NI; use the portable XTS engine.");
        if (implementation == XtsImplementation.Auto)
            implementation = AesNiXtsEngine.IsSupported ? XtsImplementation.AesNi : XtsImplementation.Portable;

        _engine = key.UseKey(implementation, static (bytes, chosen) =>
        {
            ReadOnlySpan<byte> key1 = bytes[..32], key2 = bytes[32..];
            // SP 800-38E and FIPS 140-3 IG C.I: equal halves turn XTS into a weaker mode.
            if (CryptographicOperations.FixedTimeEquals(key1, key2))
                throw new ArgumentException(
                    "The two halves of the XTS key (key1, key2) are equal; generate the key with DataEncryptionKey.Generate().",
                    nameof(key));
            return chosen == XtsImplementation.AesNi
                ? (XtsEngine)new AesNiXtsEngine(key1, key2)
                : new BitslicedXtsEngine(key1, key2);
        });
    }

    /// <summary>Whether this CPU runs the AES-NI engine (otherwise the slower portable one).</summary>
    public static bool IsHardwareAccelerated => AesNiXtsEngine.IsSupported;

    internal XtsImplementation Implementation => _engine.Implementation;

    internal SecureMemoryHandle KeySchedule => _engine.KeySchedule;

    /// <summary>
    /// Encrypts whole sectors: sector <c>firstSector + k</c> is bytes
    /// <c>[k * sectorSize, (k + 1) * sectorSize)</c>. In place is allowed (the same span twice).
    /// </summary>
    /// <exception cref="ArgumentException">A length is not a whole number of sectors, the lengths differ,
    /// the sector size is not a positive multiple of 16, or the buffers partly overlap.</exception>
    /// <exception cref="ArgumentOutOfRangeException">The sector numbers run past 2^64 - 1.</exception>
    public void Encrypt(ReadOnlySpan<byte> plaintext, Span<byte> ciphertext, ulong firstSector, int sectorSize)
    {
        int sectors = Validate(plaintext, ciphertext, firstSector, sectorSize, nameof(plaintext), nameof(ciphertext));
        if (sectors > 0) _engine.Encrypt(plaintext, ciphertext, firstSector, sectorSize, sectors);
        // The engine works from a raw pointer: keep this (and so the key memory) reachable.
        GC.KeepAlive(this);
    }

    /// <summary>Decrypts whole sectors; the inverse of <see cref="Encrypt"/>.</summary>
    /// <exception cref="ArgumentException">As for <see cref="Encrypt"/>.</exception>
    /// <exception cref="ArgumentOutOfRangeException">The sector numbers run past 2^64 - 1.</exception>
    public void Decrypt(ReadOnlySpan<byte> ciphertext, Span<byte> plaintext, ulong firstSector, int sectorSize)
    {
        int sectors = Validate(ciphertext, plaintext, firstSector, sectorSize, nameof(ciphertext), nameof(plaintext));
        if (sectors > 0) _engine.Decrypt(ciphertext, plaintext, firstSector, sectorSize, sectors);
        GC.KeepAlive(this);
    }

    /// <summary>Zeroes and frees the expanded keys. Not to be called while Encrypt/Decrypt run.</summary>
    public void Dispose()
    {
        _disposed = true;
        _engine.Dispose();
    }

    /// <summary>Checks the arguments and returns the number of sectors.</summary>
    private int Validate(ReadOnlySpan<byte> input, Span<byte> output, ulong firstSector, int sectorSize,
        string inputName, string outputName)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (sectorSize < XtsEngine.BlockSize || sectorSize % XtsEngine.BlockSize != 0)
            throw new ArgumentException(
                $"The sector size must be a positive multiple of {XtsEngine.BlockSize} bytes (512 or 4096 for a disk); got {sectorSize}.",
                nameof(sectorSize));
        if (input.Length != output.Length)
            throw new ArgumentException(
                $"The {outputName} buffer is {output.Length} bytes but the {inputName} is {input.Length}; they must be the same length.",
                outputName);
        // Sector sizes are powers of two in practice: a shift, not two divisions, on every call.
        int sectors = BitOperations.IsPow2(sectorSize)
            ? input.Length >> BitOperations.Log2((uint)sectorSize)
            : input.Length / sectorSize;
        if (sectors * sectorSize != input.Length)
            throw new ArgumentException(
                $"The {inputName} is {input.Length} bytes, not a whole number of {sectorSize}-byte sectors.",
                inputName);
        if (input.Overlaps((ReadOnlySpan<byte>)output, out int offset) && offset != 0)
            throw new ArgumentException(
                $"The {inputName} and {outputName} buffers partly overlap; pass the same buffer for in-place work, or two disjoint ones.",
                outputName);
        if (sectors > 0 && (ulong)(sectors - 1) > ulong.MaxValue - firstSector)
            throw new ArgumentOutOfRangeException(nameof(firstSector), firstSector,
                $"Sectors {firstSector} + {sectors} run past the last sector number, 2^64 - 1.");
        return sectors;
    }
}
