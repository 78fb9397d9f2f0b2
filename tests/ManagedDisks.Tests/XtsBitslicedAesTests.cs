using System.Security.Cryptography;
using ManagedDisks.Encryption;

namespace ManagedDisks.Tests;

/// <summary>
/// The portable engine's AES core on its own, so a failure points at the block cipher rather
/// than the XTS layer: FIPS-197 Appendix C.3 (AES-256), NIST SP 800-38A F.1.5 (ECB-AES256), and
/// random blocks against .NET's AES (OpenSSL underneath) in ECB mode.
/// </summary>
public unsafe class XtsBitslicedAesTests
{
    private static byte[] EncryptBlocks(byte[] key, byte[] blocks64, bool decrypt = false)
    {
        ulong* schedule = stackalloc ulong[BitslicedAes.ScheduleWords];
        BitslicedAes.ExpandKey(key, schedule);
        var output = new byte[64];
        fixed (byte* input = blocks64)
        fixed (byte* result = output)
        {
            BitslicedState state = default;
            BitslicedAes.Load(input, ref state);
            if (decrypt) BitslicedAes.Decrypt(ref state, schedule);
            else BitslicedAes.Encrypt(ref state, schedule);
            BitslicedAes.Store(ref state, result);
        }
        return output;
    }

    [Test]
    public void Fips197AppendixC3InEveryLane()
    {
        byte[] key = Convert.FromHexString("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");
        byte[] plaintext = Convert.FromHexString("00112233445566778899aabbccddeeff");
        byte[] blocks = [.. plaintext, .. plaintext, .. plaintext, .. plaintext];

        byte[] ciphertext = EncryptBlocks(key, blocks);
        for (int lane = 0; lane < 4; lane++)
            Assert.That(Convert.ToHexStringLower(ciphertext.AsSpan(16 * lane, 16)), Is.EqualTo("8ea2b7ca516745bfeafc49904b496089"), $"lane {lane}");
        Assert.That(EncryptBlocks(key, ciphertext, decrypt: true), Is.EqualTo(blocks));
    }

    [Test]
    public void Sp800_38aEcbAes256FourDifferentBlocks()
    {
        byte[] key = Convert.FromHexString("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4");
        byte[] plaintext = Convert.FromHexString(
            "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51" +
            "30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710");
        const string expected =
            "f3eed1bdb5d2a03c064b5a7e3db181f8591ccb10d410ed26dc5ba74a31362870" +
            "b6ed21b99ca6f4f9f153e7b1beafed1d23304b7a39f9f3ff067d8d8f9e24ecc7";

        byte[] ciphertext = EncryptBlocks(key, plaintext);
        Assert.That(Convert.ToHexStringLower(ciphertext), Is.EqualTo(expected));
        Assert.That(EncryptBlocks(key, ciphertext, decrypt: true), Is.EqualTo(plaintext));
    }

    [Test]
    public void AgreesWithDotNetAesEcbOnRandomBlocks()
    {
        for (int i = 0; i < 64; i++)
        {
            byte[] key = RandomNumberGenerator.GetBytes(32);
            byte[] plaintext = RandomNumberGenerator.GetBytes(64);
            using var reference = System.Security.Cryptography.Aes.Create();
            reference.Key = key;
            byte[] expected = reference.EncryptEcb(plaintext, PaddingMode.None);

            Assert.That(EncryptBlocks(key, plaintext), Is.EqualTo(expected), $"key {Convert.ToHexString(key)}");
            Assert.That(EncryptBlocks(key, expected, decrypt: true), Is.EqualTo(plaintext));
        }
    }
}
