namespace ManagedDisks.Encryption;

/// <summary>Which AES implementation an <see cref="XtsSectorCipher"/> runs on.</summary>
internal enum XtsImplementation
{
    /// <summary>AES-NI when the CPU has it, otherwise the portable engine.</summary>
    Auto,

    /// <summary><see cref="AesNiXtsEngine"/>: x86 AES instructions, eight blocks in flight.</summary>
    AesNi,

    /// <summary><see cref="BitslicedXtsEngine"/>: constant-time software AES, any CPU.</summary>
    Portable,
}

/// <summary>
/// One XTS-AES-256 implementation. Arguments arrive validated by <see cref="XtsSectorCipher"/>:
/// equal lengths, a whole number of sectors, a sector size that is a positive multiple of 16,
/// no sector number past 2^64 - 1, input and output either identical or disjoint, and
/// <c>sectors</c> = length / sectorSize &gt; 0.
/// The expanded keys are read-only after construction, so calls may run concurrently.
/// </summary>
internal abstract class XtsEngine : IDisposable
{
    public const int BlockSize = 16;

    protected XtsEngine(SecureMemoryHandle keySchedule) => KeySchedule = keySchedule;

    /// <summary>The expanded round keys (native, zeroed on Dispose).</summary>
    internal SecureMemoryHandle KeySchedule { get; }

    public abstract XtsImplementation Implementation { get; }

    public abstract void Encrypt(ReadOnlySpan<byte> input, Span<byte> output, ulong firstSector, int sectorSize, int sectors);

    public abstract void Decrypt(ReadOnlySpan<byte> input, Span<byte> output, ulong firstSector, int sectorSize, int sectors);

    public void Dispose() => KeySchedule.Dispose();
}
