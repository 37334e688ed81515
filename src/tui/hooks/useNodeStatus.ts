import { useEffect, useState } from 'react';
import type { ApiClient } from '../../client/apiClient.js';
import type { StatusResponse } from '../../api/contract.js';

export interface NodeStatusState {
  status?: StatusResponse;
  error?: string;
}

/** Polls the node's /v1/status (default every 2 s) for the status bar and the integrity alert. */
export function useNodeStatus(api: ApiClient, intervalMs: number): NodeStatusState {
  const [state, setState] = useState<NodeStatusState>({});
  useEffect(() => {
    let stopped = false;
    let timer: NodeJS.Timeout | undefined;
    const poll = async () => {
      try {
        const status = await api.status();
        if (!stopped) setState({ status });
      } catch (err) {
        if (!stopped) setState((prev) => ({ ...(prev.status ? { status: prev.status } : {}), error: (err as Error).message }));
      }
      if (!stopped) timer = setTimeout(() => void poll(), intervalMs);
    };
    void poll();
    return () => {
      stopped = true;
      if (timer) clearTimeout(timer);
    };
  }, [api, intervalMs]);
  return state;
}
