using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;

namespace ManagedDisks.Encryption;

/// <summary>
/// XTS-AES-256 on <see cref="BitslicedAes"/>: portable and constant-time, for CPUs without AES-NI
/// (and to check the AES-NI engine against). The bitsliced core works on four blocks at once, so
/// data goes through in groups of four blocks and tweaks are computed for four sectors at once.
/// </summary>
internal sealed unsafe class BitslicedXtsEngine : XtsEngine
{
    private const int Lanes = 4;
    private const int BatchBytes = Lanes * BlockSize;

    private readonly ulong* _dataKeys;
    private readonly ulong* _tweakKeys;

    public BitslicedXtsEngine(ReadOnlySpan<byte> key1, ReadOnlySpan<byte> key2)
        : base(SecureMemoryHandle.Allocate(2 * BitslicedAes.ScheduleWords * sizeof(ulong)))
    {
        _dataKeys = (ulong*)KeySchedule.Pointer;
        _tweakKeys = _dataKeys + BitslicedAes.ScheduleWords;
        BitslicedAes.ExpandKey(key1, _dataKeys);
        BitslicedAes.ExpandKey(key2, _tweakKeys);
    }

    public override XtsImplementation Implementation => XtsImplementation.Portable;

    public override void Encrypt(ReadOnlySpan<byte> input, Span<byte> output, ulong firstSector, int sectorSize, int sectors) =>
        Run(input, output, firstSector, sectorSize, sectors, decrypt: false);

    public override void Decrypt(ReadOnlySpan<byte> input, Span<byte> output, ulong firstSector, int sectorSize, int sectors) =>
        Run(input, output, firstSector, sectorSize, sectors, decrypt: true);

    private void Run(ReadOnlySpan<byte> input, Span<byte> output, ulong firstSector, int sectorSize, int sectors, bool decrypt)
    {
        int blocksPerSector = sectorSize / BlockSize;
        // Tweaks and tweak-masked data are derived from key2: zeroed before returning.
        byte* batch = stackalloc byte[BatchBytes];
        ulong* tweaks = stackalloc ulong[2 * Lanes];
        BitslicedState state = default;
        try
        {
            fixed (byte* src = input)
            fixed (byte* dst = output)
            {
                for (int first = 0; first < sectors; first += Lanes)
                {
                    int count = Math.Min(Lanes, sectors - first);
                    EncryptTweaks(firstSector + (ulong)first, count, batch, tweaks, ref state);
                    for (int i = 0; i < count; i++)
                    {
                        nint offset = (nint)(first + i) * sectorSize;
                        ProcessDataUnit(src + offset, dst + offset, blocksPerSector, tweaks[2 * i], tweaks[2 * i + 1],
                            batch, ref state, decrypt);
                    }
                }
            }
        }
        finally
        {
            CryptographicOperations.ZeroMemory(new Span<byte>(batch, BatchBytes));
            CryptographicOperations.ZeroMemory(new Span<byte>(tweaks, 2 * Lanes * sizeof(ulong)));
            state = default;
        }
    }

    /// <summary>T = E_K2(i) for sectors i = <paramref name="sector"/>.. (up to four), as (low, high) halves.</summary>
    private void EncryptTweaks(ulong sector, int count, byte* batch, ulong* tweaks, ref BitslicedState state)
    {
        new Span<byte>(batch, BatchBytes).Clear();
        for (int i = 0; i < count; i++)
            BinaryPrimitives.WriteUInt64LittleEndian(new Span<byte>(batch + i * BlockSize, 8), sector + (ulong)i);
        BitslicedAes.Load(batch, ref state);
        BitslicedAes.Encrypt(ref state, _tweakKeys);
        BitslicedAes.Store(ref state, batch);
        for (int i = 0; i < Lanes; i++)
        {
            tweaks[2 * i] = BinaryPrimitives.ReadUInt64LittleEndian(new ReadOnlySpan<byte>(batch + i * BlockSize, 8));
            tweaks[2 * i + 1] = BinaryPrimitives.ReadUInt64LittleEndian(new ReadOnlySpan<byte>(batch + i * BlockSize + 8, 8));
        }
    }

    private void ProcessDataUnit(byte* src, byte* dst, int blocks, ulong tweakLow, ulong tweakHigh,
        byte* batch, ref BitslicedState state, bool decrypt)
    {
        ulong* t = stackalloc ulong[2 * Lanes];
        while (blocks > 0)
        {
            int count = Math.Min(Lanes, blocks);
            if (count < Lanes) new Span<byte>(batch, BatchBytes).Clear();
            for (int i = 0; i < count; i++)
            {
                t[2 * i] = tweakLow;
                t[2 * i + 1] = tweakHigh;
                XorBlock(src + i * BlockSize, batch + i * BlockSize, tweakLow, tweakHigh);
                MultiplyByAlpha(ref tweakLow, ref tweakHigh);
            }
            BitslicedAes.Load(batch, ref state);
            if (decrypt) BitslicedAes.Decrypt(ref state, _dataKeys);
            else BitslicedAes.Encrypt(ref state, _dataKeys);
            BitslicedAes.Store(ref state, batch);
            for (int i = 0; i < count; i++)
                XorBlock(batch + i * BlockSize, dst + i * BlockSize, t[2 * i], t[2 * i + 1]);

            blocks -= count;
            src += count * BlockSize;
            dst += count * BlockSize;
        }
        CryptographicOperations.ZeroMemory(new Span<byte>(t, 2 * Lanes * sizeof(ulong)));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void XorBlock(byte* from, byte* to, ulong low, ulong high)
    {
        Unsafe.WriteUnaligned(to, Unsafe.ReadUnaligned<ulong>(from) ^ ToLittleEndian(low));
        Unsafe.WriteUnaligned(to + 8, Unsafe.ReadUnaligned<ulong>(from + 8) ^ ToLittleEndian(high));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong ToLittleEndian(ulong x) => BitConverter.IsLittleEndian ? x : BinaryPrimitives.ReverseEndianness(x);

    /// <summary>T·α in GF(2^128) (IEEE 1619-2007 5.2), branch-free: the top bit folds back as 0x87.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void MultiplyByAlpha(ref ulong low, ref ulong high)
    {
        ulong reduce = (ulong)((long)high >> 63) & 0x87;
        high = (high << 1) | (low >> 63);
        low = (low << 1) ^ reduce;
    }
}
