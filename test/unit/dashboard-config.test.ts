import { describe, expect, it } from 'vitest';
import { loadDashboardConfig } from '../../src/config/dashboard.js';

describe('dashboard settings', () => {
  it('listens on 127.0.0.1:9465 unless --listen says otherwise, at LOG_LEVEL (the flag wins)', () => {
    expect(loadDashboardConfig({}, {})).toEqual({
      listen: { host: '127.0.0.1', port: 9465 },
      token: undefined,
      logLevel: 'info',
    });
    expect(
      loadDashboardConfig(
        { STEVEDORE_DASHBOARD_TOKEN: 'a'.repeat(32), LOG_LEVEL: 'debug' },
        { listen: '0.0.0.0:8080', logLevel: 'warn' },
      ),
    ).toEqual({ listen: { host: '0.0.0.0', port: 8080 }, token: 'a'.repeat(32), logLevel: 'warn' });
    expect(loadDashboardConfig({ LOG_LEVEL: 'debug' }, {}).logLevel).toBe('debug');
  });

  it('names the flag or variable that is wrong', () => {
    expect(() => loadDashboardConfig({}, { listen: 'nowhere' })).toThrow(/^--listen="nowhere" is invalid/);
    expect(() => loadDashboardConfig({ LOG_LEVEL: 'loud' }, {})).toThrow('LOG_LEVEL="loud" is invalid');
  });
});
