using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using X86Aes = System.Runtime.Intrinsics.X86.Aes;

namespace ManagedDisks.Encryption;

/// <summary>
/// XTS-AES-256 on AES-NI. AESENC has a latency of about four cycles and two units issue one each
/// per cycle, so one block at a time would leave the units idle seven cycles in eight; the data
/// loop keeps eight independent blocks in flight. .NET 10 has no 256/512-bit AES (VAES) type, so
/// this is 128 bits wide, as OpenSSL's aesni_xts path is.
/// </summary>
internal sealed unsafe class AesNiXtsEngine : XtsEngine
{
    private const int RoundKeys = 15; // AES-256: 14 rounds

    // Key schedule layout, in 16-byte round keys: key1 for encryption, key1 for the equivalent
    // inverse cipher (FIPS-197 5.3.5, what AESDEC expects), key2 for encryption (tweaks only).
    private readonly Vector128<byte>* _encryptKeys;
    private readonly Vector128<byte>* _decryptKeys;
    private readonly Vector128<byte>* _tweakKeys;

    public AesNiXtsEngine(ReadOnlySpan<byte> key1, ReadOnlySpan<byte> key2)
        : base(SecureMemoryHandle.Allocate(3 * RoundKeys * 16))
    {
        var keys = (Vector128<byte>*)KeySchedule.Pointer; // page-aligned, so 16-aligned
        _encryptKeys = keys;
        _decryptKeys = keys + RoundKeys;
        _tweakKeys = keys + 2 * RoundKeys;
        ExpandKey(key1, _encryptKeys);
        InvertKey(_encryptKeys, _decryptKeys);
        ExpandKey(key2, _tweakKeys);
    }

    public static bool IsSupported => X86Aes.IsSupported && Sse2.IsSupported;

    public override XtsImplementation Implementation => XtsImplementation.AesNi;

    public override void Encrypt(ReadOnlySpan<byte> input, Span<byte> output, ulong firstSector, int sectorSize, int sectors)
    {
        fixed (byte* src = input)
        fixed (byte* dst = output)
        {
            Vector128<byte> tweak = EncryptTweak(firstSector, _tweakKeys);
            for (int s = 0; s < sectors; s++)
            {
                // Start the next sector's tweak now: its 14 dependent rounds overlap this sector's data.
                Vector128<byte> next = s + 1 < sectors ? EncryptTweak(firstSector + (ulong)s + 1, _tweakKeys) : default;
                nint offset = (nint)s * sectorSize;
                EncryptDataUnit(src + offset, dst + offset, sectorSize / BlockSize, tweak, _encryptKeys);
                tweak = next;
            }
        }
    }

    public override void Decrypt(ReadOnlySpan<byte> input, Span<byte> output, ulong firstSector, int sectorSize, int sectors)
    {
        fixed (byte* src = input)
        fixed (byte* dst = output)
        {
            Vector128<byte> tweak = EncryptTweak(firstSector, _tweakKeys);
            for (int s = 0; s < sectors; s++)
            {
                Vector128<byte> next = s + 1 < sectors ? EncryptTweak(firstSector + (ulong)s + 1, _tweakKeys) : default;
                nint offset = (nint)s * sectorSize;
                DecryptDataUnit(src + offset, dst + offset, sectorSize / BlockSize, tweak, _decryptKeys);
                tweak = next;
            }
        }
    }

    /// <summary>
    /// The tweak of block j + 1 from that of block j: multiplication by the primitive element α in
    /// GF(2^128) mod x^128 + x^7 + x^2 + x + 1 (IEEE 1619-2007 5.2), little-endian. Each 64-bit
    /// half shifts left by one; the bit leaving the low half enters the high half, and the bit
    /// leaving the top folds back in as 0x87. The carries come from the sign bits of dwords 1
    /// and 3, moved into dwords 2 and 0, with no branch.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<byte> MultiplyByAlpha(Vector128<byte> tweak)
    {
        Vector128<int> carries = Sse2.ShiftRightArithmetic(Sse2.Shuffle(tweak.AsInt32(), 0b00_01_00_11), 31)
                                 & Vector128.Create(0x87, 0, 1, 0);
        return (Sse2.Add(tweak.AsUInt64(), tweak.AsUInt64()).AsInt32() ^ carries).AsByte();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<byte> EncryptTweak(ulong sector, Vector128<byte>* k)
    {
        Vector128<byte> b = Vector128.Create(sector, 0UL).AsByte() ^ k[0];
        for (int r = 1; r < RoundKeys - 1; r++) b = X86Aes.Encrypt(b, k[r]);
        return X86Aes.EncryptLast(b, k[RoundKeys - 1]);
    }

    /// <summary>
    /// One data unit: C_j = E_K1(P_j ⊕ T_j) ⊕ T_j. The final XOR with T_j is folded into the last
    /// round key (AESENCLAST ends with an XOR), and the first into round key 0.
    /// </summary>
    private static void EncryptDataUnit(byte* src, byte* dst, int blocks, Vector128<byte> tweak, Vector128<byte>* k)
    {
        Vector128<byte> k0 = k[0], k1 = k[1], k2 = k[2], k3 = k[3], k4 = k[4], k5 = k[5], k6 = k[6],
            k7 = k[7], k8 = k[8], k9 = k[9], k10 = k[10], k11 = k[11], k12 = k[12], k13 = k[13], k14 = k[14];

        for (; blocks >= 8; blocks -= 8, src += 8 * BlockSize, dst += 8 * BlockSize)
        {
            Vector128<byte> t0 = tweak;
            Vector128<byte> t1 = MultiplyByAlpha(t0);
            Vector128<byte> t2 = MultiplyByAlpha(t1);
            Vector128<byte> t3 = MultiplyByAlpha(t2);
            Vector128<byte> t4 = MultiplyByAlpha(t3);
            Vector128<byte> t5 = MultiplyByAlpha(t4);
            Vector128<byte> t6 = MultiplyByAlpha(t5);
            Vector128<byte> t7 = MultiplyByAlpha(t6);
            tweak = MultiplyByAlpha(t7);

            Vector128<byte> b0 = Sse2.LoadVector128(src) ^ (t0 ^ k0);
            Vector128<byte> b1 = Sse2.LoadVector128(src + 16) ^ (t1 ^ k0);
            Vector128<byte> b2 = Sse2.LoadVector128(src + 32) ^ (t2 ^ k0);
            Vector128<byte> b3 = Sse2.LoadVector128(src + 48) ^ (t3 ^ k0);
            Vector128<byte> b4 = Sse2.LoadVector128(src + 64) ^ (t4 ^ k0);
            Vector128<byte> b5 = Sse2.LoadVector128(src + 80) ^ (t5 ^ k0);
            Vector128<byte> b6 = Sse2.LoadVector128(src + 96) ^ (t6 ^ k0);
            Vector128<byte> b7 = Sse2.LoadVector128(src + 112) ^ (t7 ^ k0);

            EncryptRound8(ref b0, ref b1, ref b2, ref b3, ref b4, ref b5, ref b6, ref b7, k1);
            EncryptRound8(ref b0, ref b1, ref b2, ref b3, ref b4, ref b5, ref b6, ref b7, k2);
            EncryptRound8(ref b0, ref b1, ref b2, ref b3, ref b4, ref b5, ref b6, ref b7, k3);
            EncryptRound8(ref b0, ref b1, ref b2, ref b3, ref b4, ref b5, ref b6, ref b7, k4);
            EncryptRound8(ref b0, ref b1, ref b2, ref b3, ref b4, ref b5, ref b6, ref b7, k5);
            EncryptRound8(ref b0, ref b1, ref b2, ref b3, ref b4, ref b5, ref b6, ref b7, k6);
            EncryptRound8(ref b0, ref b1, ref b2, ref b3, ref b4, ref b5, ref b6, ref b7, k7);
            EncryptRound8(ref b0, ref b1, ref b2, ref b3, ref b4, ref b5, ref b6, ref b7, k8);
            EncryptRound8(ref b0, ref b1, ref b2, ref b3, ref b4, ref b5, ref b6, ref b7, k9);
            EncryptRound8(ref b0, ref b1, ref b2, ref b3, ref b4, ref b5, ref b6, ref b7, k10);
            EncryptRound8(ref b0, ref b1, ref b2, ref b3, ref b4, ref b5, ref b6, ref b7, k11);
            EncryptRound8(ref b0, ref b1, ref b2, ref b3, ref b4, ref b5, ref b6, ref b7, k12);
            EncryptRound8(ref b0, ref b1, ref b2, ref b3, ref b4, ref b5, ref b6, ref b7, k13);

            Sse2.Store(dst, X86Aes.EncryptLast(b0, k14 ^ t0));
            Sse2.Store(dst + 16, X86Aes.EncryptLast(b1, k14 ^ t1));
            Sse2.Store(dst + 32, X86Aes.EncryptLast(b2, k14 ^ t2));
            Sse2.Store(dst + 48, X86Aes.EncryptLast(b3, k14 ^ t3));
            Sse2.Store(dst + 64, X86Aes.EncryptLast(b4, k14 ^ t4));
            Sse2.Store(dst + 80, X86Aes.EncryptLast(b5, k14 ^ t5));
            Sse2.Store(dst + 96, X86Aes.EncryptLast(b6, k14 ^ t6));
            Sse2.Store(dst + 112, X86Aes.EncryptLast(b7, k14 ^ t7));
        }

        // Data units that are not a multiple of 128 bytes (512 and 4096 are): one block at a time.
        for (; blocks > 0; blocks--, src += BlockSize, dst += BlockSize)
        {
            Vector128<byte> b = Sse2.LoadVector128(src) ^ (tweak ^ k0);
            for (int r = 1; r < RoundKeys - 1; r++) b = X86Aes.Encrypt(b, k[r]);
            Sse2.Store(dst, X86Aes.EncryptLast(b, k14 ^ tweak));
            tweak = MultiplyByAlpha(tweak);
        }
    }

    /// <summary>P_j = D_K1(C_j ⊕ T_j) ⊕ T_j, with the same folding as encryption.</summary>
    private static void DecryptDataUnit(byte* src, byte* dst, int blocks, Vector128<byte> tweak, Vector128<byte>* k)
    {
        Vector128<byte> k0 = k[0], k1 = k[1], k2 = k[2], k3 = k[3], k4 = k[4], k5 = k[5], k6 = k[6],
            k7 = k[7], k8 = k[8], k9 = k[9], k10 = k[10], k11 = k[11], k12 = k[12], k13 = k[13], k14 = k[14];

        for (; blocks >= 8; blocks -= 8, src += 8 * BlockSize, dst += 8 * BlockSize)
        {
            Vector128<byte> t0 = tweak;
            Vector128<byte> t1 = MultiplyByAlpha(t0);
            Vector128<byte> t2 = MultiplyByAlpha(t1);
            Vector128<byte> t3 = MultiplyByAlpha(t2);
            Vector128<byte> t4 = MultiplyByAlpha(t3);
            Vector128<byte> t5 = MultiplyByAlpha(t4);
            Vector128<byte> t6 = MultiplyByAlpha(t5);
            Vector128<byte> t7 = MultiplyByAlpha(t6);
            tweak = MultiplyByAlpha(t7);

            Vector128<byte> b0 = Sse2.LoadVector128(src) ^ (t0 ^ k0);
            Vector128<byte> b1 = Sse2.LoadVector128(src + 16) ^ (t1 ^ k0);
            Vector128<byte> b2 = Sse2.LoadVector128(src + 32) ^ (t2 ^ k0);
            Vector128<byte> b3 = Sse2.LoadVector128(src + 48) ^ (t3 ^ k0);
            Vector128<byte> b4 = Sse2.LoadVector128(src + 64) ^ (t4 ^ k0);
            Vector128<byte> b5 = Sse2.LoadVector128(src + 80) ^ (t5 ^ k0);
            Vector128<byte> b6 = Sse2.LoadVector128(src + 96) ^ (t6 ^ k0);
            Vector128<byte> b7 = Sse2.LoadVector128(src + 112) ^ (t7 ^ k0);

            DecryptRound8(ref b0, ref b1, ref b2, ref b3, ref b4, ref b5, ref b6, ref b7, k1);
            DecryptRound8(ref b0, ref b1, ref b2, ref b3, ref b4, ref b5, ref b6, ref b7, k2);
            DecryptRound8(ref b0, ref b1, ref b2, ref b3, ref b4, ref b5, ref b6, ref b7, k3);
            DecryptRound8(ref b0, ref b1, ref b2, ref b3, ref b4, ref b5, ref b6, ref b7, k4);
            DecryptRound8(ref b0, ref b1, ref b2, ref b3, ref b4, ref b5, ref b6, ref b7, k5);
            DecryptRound8(ref b0, ref b1, ref b2, ref b3, ref b4, ref b5, ref b6, ref b7, k6);
            DecryptRound8(ref b0, ref b1, ref b2, ref b3, ref b4, ref b5, ref b6, ref b7, k7);
            DecryptRound8(ref b0, ref b1, ref b2, ref b3, ref b4, ref b5, ref b6, ref b7, k8);
            DecryptRound8(ref b0, ref b1, ref b2, ref b3, ref b4, ref b5, ref b6, ref b7, k9);
            DecryptRound8(ref b0, ref b1, ref b2, ref b3, ref b4, ref b5, ref b6, ref b7, k10);
            DecryptRound8(ref b0, ref b1, ref b2, ref b3, ref b4, ref b5, ref b6, ref b7, k11);
            DecryptRound8(ref b0, ref b1, ref b2, ref b3, ref b4, ref b5, ref b6, ref b7, k12);
            DecryptRound8(ref b0, ref b1, ref b2, ref b3, ref b4, ref b5, ref b6, ref b7, k13);

            Sse2.Store(dst, X86Aes.DecryptLast(b0, k14 ^ t0));
            Sse2.Store(dst + 16, X86Aes.DecryptLast(b1, k14 ^ t1));
            Sse2.Store(dst + 32, X86Aes.DecryptLast(b2, k14 ^ t2));
            Sse2.Store(dst + 48, X86Aes.DecryptLast(b3, k14 ^ t3));
            Sse2.Store(dst + 64, X86Aes.DecryptLast(b4, k14 ^ t4));
            Sse2.Store(dst + 80, X86Aes.DecryptLast(b5, k14 ^ t5));
            Sse2.Store(dst + 96, X86Aes.DecryptLast(b6, k14 ^ t6));
            Sse2.Store(dst + 112, X86Aes.DecryptLast(b7, k14 ^ t7));
        }

        for (; blocks > 0; blocks--, src += BlockSize, dst += BlockSize)
        {
            Vector128<byte> b = Sse2.LoadVector128(src) ^ (tweak ^ k0);
            for (int r = 1; r < RoundKeys - 1; r++) b = X86Aes.Decrypt(b, k[r]);
            Sse2.Store(dst, X86Aes.DecryptLast(b, k14 ^ tweak));
            tweak = MultiplyByAlpha(tweak);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void EncryptRound8(ref Vector128<byte> b0, ref Vector128<byte> b1, ref Vector128<byte> b2,
        ref Vector128<byte> b3, ref Vector128<byte> b4, ref Vector128<byte> b5, ref Vector128<byte> b6,
        ref Vector128<byte> b7, Vector128<byte> k)
    {
        b0 = X86Aes.Encrypt(b0, k);
        b1 = X86Aes.Encrypt(b1, k);
        b2 = X86Aes.Encrypt(b2, k);
        b3 = X86Aes.Encrypt(b3, k);
        b4 = X86Aes.Encrypt(b4, k);
        b5 = X86Aes.Encrypt(b5, k);
        b6 = X86Aes.Encrypt(b6, k);
        b7 = X86Aes.Encrypt(b7, k);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void DecryptRound8(ref Vector128<byte> b0, ref Vector128<byte> b1, ref Vector128<byte> b2,
        ref Vector128<byte> b3, ref Vector128<byte> b4, ref Vector128<byte> b5, ref Vector128<byte> b6,
        ref Vector128<byte> b7, Vector128<byte> k)
    {
        b0 = X86Aes.Decrypt(b0, k);
        b1 = X86Aes.Decrypt(b1, k);
        b2 = X86Aes.Decrypt(b2, k);
        b3 = X86Aes.Decrypt(b3, k);
        b4 = X86Aes.Decrypt(b4, k);
        b5 = X86Aes.Decrypt(b5, k);
        b6 = X86Aes.Decrypt(b6, k);
        b7 = X86Aes.Decrypt(b7, k);
    }

    /// <summary>
    /// AES-256 key expansion (FIPS-197 5.2) with AESKEYGENASSIST, as in Intel's AES-NI white paper:
    /// even round keys take SubWord(RotWord(w)) ⊕ Rcon of the previous key's last word, odd ones
    /// SubWord(w) with no rotation or constant.
    /// </summary>
    private static void ExpandKey(ReadOnlySpan<byte> key, Vector128<byte>* rk)
    {
        Vector128<byte> a = Vector128.Create(key[..16]);
        Vector128<byte> b = Vector128.Create(key[16..32]);
        rk[0] = a;
        rk[1] = b;
        rk[2] = a = NextEven(a, b, 0x01);
        rk[3] = b = NextOdd(b, a);
        rk[4] = a = NextEven(a, b, 0x02);
        rk[5] = b = NextOdd(b, a);
        rk[6] = a = NextEven(a, b, 0x04);
        rk[7] = b = NextOdd(b, a);
        rk[8] = a = NextEven(a, b, 0x08);
        rk[9] = b = NextOdd(b, a);
        rk[10] = a = NextEven(a, b, 0x10);
        rk[11] = b = NextOdd(b, a);
        rk[12] = a = NextEven(a, b, 0x20);
        rk[13] = b = NextOdd(b, a);
        rk[14] = NextEven(a, b, 0x40);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<byte> NextEven(Vector128<byte> previous, Vector128<byte> last, [ConstantExpected] byte rcon)
        => PrefixXor(previous) ^ Sse2.Shuffle(X86Aes.KeygenAssist(last, rcon).AsInt32(), 0xFF).AsByte();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<byte> NextOdd(Vector128<byte> previous, Vector128<byte> last)
        => PrefixXor(previous) ^ Sse2.Shuffle(X86Aes.KeygenAssist(last, 0x00).AsInt32(), 0xAA).AsByte();

    /// <summary>w0, w0⊕w1, w0⊕w1⊕w2, w0⊕w1⊕w2⊕w3: the running XOR along the words of a round key.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<byte> PrefixXor(Vector128<byte> x)
    {
        x ^= Sse2.ShiftLeftLogical128BitLane(x, 4); // w0, w0⊕w1, w1⊕w2, w2⊕w3
        return x ^ Sse2.ShiftLeftLogical128BitLane(x, 8);
    }

    /// <summary>Round keys for AESDEC: reversed, InvMixColumns applied to all but the outer two.</summary>
    private static void InvertKey(Vector128<byte>* encrypt, Vector128<byte>* decrypt)
    {
        decrypt[0] = encrypt[RoundKeys - 1];
        for (int r = 1; r < RoundKeys - 1; r++) decrypt[r] = X86Aes.InverseMixColumns(encrypt[RoundKeys - 1 - r]);
        decrypt[RoundKeys - 1] = encrypt[0];
    }
}
